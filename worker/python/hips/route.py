"""Which of its aggregators a worker talks to, and when it moves: the C++
worker's policy (worker/worker.cc HeartbeatLoop and MaybeSwitch,
docs/faults.md "Aggregator loss: failover").

- The worker starts on its own aggregator, the first of its list.
- Failing over: once the aggregator it is on has not answered a heartbeat
  for a lease, the worker gives it up (the call in flight is cancelled) and
  moves to the next of the list, wrapping around.
- Moving back: while away from its own, the worker probes it every two
  leases with a `leaving` heartbeat, which does not join it. Once it
  answers, the worker moves back between two steps, first sending `leaving`
  to the aggregator it leaves, so that its rounds do not wait a lease for a
  worker that is gone. A restarted aggregator so gets its workers back and
  the load stays balanced; a worker never bounces: it moves only on a lease
  of silence, or back to its own.

Route holds the decisions and no I/O: time comes in as arguments, so the
policy is tested without a cluster. Thread-safe: the heartbeat thread
reports heartbeats and probes, the training thread moves.
"""
import collections
import threading

# A move of the training thread: from index `source` to index `target` of
# the list; `leave`: say `leaving` to the source first (a move back).
Move = collections.namedtuple("Move", "source target leave")


class Route:
    """The policy above for a worker of `count` aggregators, named by their
    index in its list (0: its own). `now` is a time.monotonic() reading."""

    def __init__(self, count, return_to_preferred=True, now=0.0):
        if count < 1:
            raise ValueError("a route needs at least one aggregator")
        self._lock = threading.Lock()
        self._count = count
        self._return_to_preferred = return_to_preferred
        self._active = 0
        self._failover = False  # the active aggregator stopped answering
        self._move_back = False  # the preferred one answers again
        self.switches = 0
        # The heartbeat thread's view: the aggregator it watches, when that
        # one last answered, when to probe the preferred one next.
        self._watched = 0
        self._last_answer = now
        self._next_probe = now

    def begin(self, now):
        """Heartbeat thread, as it starts: the aggregator it is on gets a
        full lease to answer, the preferred one is probed at once."""
        with self._lock:
            self._watched = self._active
            self._last_answer = now
            self._next_probe = now

    @property
    def active(self):
        """The index of the aggregator the worker talks to."""
        with self._lock:
            return self._active

    @property
    def failing_over(self):
        """Whether the active aggregator was given up and the move to the
        next is pending: a retry then goes there at once, without backoff."""
        with self._lock:
            return self._failover

    def watch(self, now, lease_s):
        """Heartbeat thread, before each heartbeat: the index to send it to.
        After a move the new aggregator gets a full lease to answer, and the
        first probe of the preferred one comes two leases later."""
        with self._lock:
            if self._active != self._watched:
                self._watched = self._active
                self._last_answer = now
                self._next_probe = now + 2 * lease_s
            return self._watched

    def heartbeat_result(self, index, answered, now, lease_s):
        """Heartbeat thread: whether aggregator `index` (what watch()
        returned) answered the heartbeat sent at `now`. True when it is
        given up now: the caller cancels the call in flight, which the
        training thread then retries after moving. An answer about an
        aggregator the worker left meanwhile is stale and ignored: it must
        not make the worker leave the one it just moved to."""
        with self._lock:
            if index != self._active:
                return False
            if answered:
                self._last_answer = now
                return False
            if now - self._last_answer > lease_s and not self._failover:
                self._failover = True
                return True
            return False

    def probe_due(self, now, lease_s):
        """Heartbeat thread: whether to probe the preferred aggregator now
        (then the next probe is two leases away)."""
        with self._lock:
            if (not self._return_to_preferred or self._watched == 0 or now < self._next_probe
                    or self._move_back):
                return False
            self._next_probe = now + 2 * lease_s
            return True

    def probe_result(self, answered):
        """Heartbeat thread: the preferred aggregator answered the probe."""
        if answered:
            with self._lock:
                self._move_back = True

    def next_move(self):
        """Training thread, between steps and between attempts of a push:
        the Move to make now, or None. Failing over comes first: an
        aggregator given up is left whatever else was asked."""
        with self._lock:
            source = target = self._active
            if self._failover:
                target = (source + 1) % self._count
            elif self._move_back:
                target = 0
            leave = not self._failover and self._move_back
            self._failover = self._move_back = False
            if target == source:
                return None
            self._active = target
            self.switches += 1
            return Move(source, target, leave)
