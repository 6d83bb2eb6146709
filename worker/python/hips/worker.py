"""hips.Worker: a PyTorch model as a hips worker (docs/python.md).

The same protocol as the C++ worker (docs/protocol.md): heartbeats hold a
lease at the aggregator, weights arrive by long poll, a gradient travels as
a client stream of chunks (raw little-endian float32, in layout order), and
a push whose outcome is unknown is retried, marked as a retry, on the same
or (failing over) the next aggregator; a worker that failed over moves back
to its own aggregator once that one answers again. Retries, deadlines,
failover and argument checks follow the C++ worker (worker/worker.cc);
retry.py, route.py and checks.py hold its rules.
"""
import logging
import secrets
import threading
import time

import grpc
import numpy as np
import torch

from . import checks
from . import hips_pb2 as pb
from .errors import HipsError, HipsRpcError
from .retry import Retries, is_retryable
from .route import Route

__all__ = ["HipsError", "HipsRpcError", "Weights", "Worker", "layout_of", "save_module"]

_log = logging.getLogger("hips")

_MODES = {pb.MODE_SYNC: "sync", pb.MODE_ASYNC: "async", pb.MODE_SSP: "ssp",
          pb.MODE_FEDAVG: "fedavg"}
# The C++ daemons' channel settings (CreateHipsChannel in
# services/net/grpc_util.cc): messages up to a 64 MiB chunk and its header;
# reconnecting within a second after a peer restarts (gRPC's default backoff
# grows to two minutes, and a call that does not wait for ready, such as the
# probe of the preferred aggregator, fails at once until then); a connection
# of each channel's own.
_CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", (64 << 20) + (1 << 20)),
    ("grpc.max_send_message_length", (64 << 20) + (1 << 20)),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.use_local_subchannel_pool", 1),
]
# A goodbye (`leaving`) is worth this long at most: it only spares the
# aggregator's rounds a lease of waiting (the C++ worker's 500 ms).
_GOODBYE_TIMEOUT_S = 0.5


class _Cancelled(grpc.RpcError):
    """A pull or push this worker cancelled itself, saying why (gRPC's own
    "Locally cancelled by application!" would not): retried."""

    def __init__(self, why):
        super().__init__(why)
        self._why = why

    def code(self):
        return grpc.StatusCode.CANCELLED

    def details(self):
        return self._why


def layout_of(model):
    """The model's layout as hips sees it: (name, tensor, is_buffer) for its
    parameters in order, then its float32 buffers."""
    out = [(name, p, False) for name, p in model.named_parameters()]
    out += [(name, b, True) for name, b in model.named_buffers() if b.dtype == torch.float32]
    return out


def save_module(model, path):
    """Writes `model` as the TorchScript file HQ and the C++ workers load
    (--model=torchscript --model_file=PATH): scripted, not traced, so that
    train() and eval() keep switching dropout and BatchNorm."""
    torch.jit.script(model).save(path)


class Weights:
    """What the newest pull brought: the version, the mode it is trained in
    ("sync", "async", "ssp" or "fedavg") and whether training is done."""

    def __init__(self, header):
        self.version = header.version
        self.mode = _MODES.get(header.mode.mode, "unknown")
        self.staleness = header.mode.staleness
        self.training_done = header.training_done
        self.incarnation = header.incarnation

    def __repr__(self):
        return (f"Weights(version={self.version}, mode={self.mode}, "
                f"training_done={self.training_done})")


def _check_options(model, aggregator, worker_id, failover, chunk_bytes, seconds,
                   heartbeats_per_lease, max_attempts, return_to_preferred):
    """Refuses a bad argument before anything is dialled: TypeError or
    ValueError naming it (checks.py). Returns the failover list."""
    checks.check_type("model", model, (torch.nn.Module,), "a torch.nn.Module")
    checks.check_address("aggregator", aggregator)
    failover = checks.check_addresses("failover", failover)
    checks.check_member_id("worker_id", worker_id)
    checks.check_chunk_bytes("chunk_bytes", chunk_bytes)
    for name, value in seconds.items():
        checks.check_seconds(name, value)
    if seconds["min_backoff_s"] > seconds["max_backoff_s"]:
        raise ValueError(f"min_backoff_s ({seconds['min_backoff_s']}) must not exceed "
                         f"max_backoff_s ({seconds['max_backoff_s']})")
    # Fewer than two heartbeats per lease and one late heartbeat loses it.
    checks.check_int_at_least("heartbeats_per_lease", heartbeats_per_lease, 2)
    if max_attempts is not None:
        checks.check_int_at_least("max_attempts", max_attempts, 1)
    checks.check_bool("return_to_preferred", return_to_preferred)
    return failover


def _cluster_token(token, token_file):
    """The token the worker presents, from `token` or `token_file` (never
    both: which one would win is a guess), checked as the daemons check
    theirs; None for none."""
    if token is not None and token_file is not None:
        raise ValueError("give token or token_file, not both")
    if token_file is not None:
        return checks.read_token_file(token_file)
    if token is not None:
        checks.check_token("token", token)
    return token


class Worker:
    """A worker of a hips cluster training `model` (a torch.nn.Module with
    the layout of HQ's --model_file).

    aggregator: "host:port" (or "unix:PATH") of its own aggregator;
    failover: more addresses to move to when it stops answering (it moves
    back once its own answers again, unless return_to_preferred=False).
    worker_id: unique in the cluster (1 to 128 of [A-Za-z0-9._-]). token /
    token_file: the home's own member token (hips token --member=ID
    --role=worker), or in a cluster without member keys the cluster token
    (a token file must be readable by its owner only, as for the daemons'
    --token_file). tls_ca (and tls_cert, tls_key for mutual TLS): PEM
    files, as the daemons' flags. Without tls_ca it dials only this
    machine, unless insecure=True (as the daemons' --insecure).

    Deadlines and retries, the C++ worker's defaults (WorkerOptions):
    long_poll_s: how long a pull waits for new weights before asking again;
    push_timeout_s: a push's deadline, waiting for a connection included;
    lease_s: the lease assumed until the aggregator states its own (a
    heartbeat waits half a lease for its answer); heartbeats_per_lease;
    min_backoff_s, max_backoff_s: the jittered exponential backoff between
    attempts; max_attempts: failed attempts in a row of one pull or push
    before run() raises HipsRpcError (None: retry as long as the worker
    runs, as the C++ worker does).

    Bad arguments raise TypeError or ValueError naming them. Thread-safety:
    run(), pull() and push() from one thread; close() from any.
    """

    def __init__(self, model, aggregator, worker_id, *, failover=(), token=None, token_file=None,
                 tls_ca=None, tls_cert=None, tls_key=None, chunk_bytes=256 << 10,
                 long_poll_s=2.0, push_timeout_s=300.0, lease_s=2.0, heartbeats_per_lease=4,
                 min_backoff_s=0.05, max_backoff_s=2.0, max_attempts=None,
                 return_to_preferred=True, insecure=False):
        failover = _check_options(
            model, aggregator, worker_id, failover, chunk_bytes,
            {"long_poll_s": long_poll_s, "push_timeout_s": push_timeout_s, "lease_s": lease_s,
             "min_backoff_s": min_backoff_s, "max_backoff_s": max_backoff_s},
            heartbeats_per_lease, max_attempts, return_to_preferred)
        token = _cluster_token(token, token_file)
        checks.check_plaintext([aggregator, *failover], tls_ca, insecure)
        tls = checks.read_tls_files(tls_ca, tls_cert, tls_key)
        self.model = model
        self.worker_id = worker_id
        self._layout = layout_of(model)
        self._num_floats = sum(t.numel() for _, t, _ in self._layout)
        if self._num_floats == 0:
            raise ValueError("model has no parameters or float32 buffers: nothing to train")
        # Reused by every push and pull: no allocation (and no page faults)
        # of a model-sized buffer per step.
        self._flat = np.empty(self._num_floats, dtype="<f4")
        self._flat_bytes = memoryview(self._flat).cast("B")
        self._incoming = bytearray(self._num_floats * 4)
        self._chunk_bytes = chunk_bytes
        self._long_poll_s = long_poll_s
        self._push_timeout_s = push_timeout_s
        self._heartbeats_per_lease = heartbeats_per_lease
        self._min_backoff_s = min_backoff_s
        self._max_backoff_s = max_backoff_s
        self._max_attempts = max_attempts
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        credentials = None
        if tls[0] is not None:
            credentials = grpc.ssl_channel_credentials(tls[0], tls[2], tls[1])
        self._addresses = [aggregator, *failover]
        self._stubs = [self._stub(a, credentials) for a in self._addresses]
        self._route = Route(len(self._stubs), return_to_preferred)
        # This process's incarnation: random, never the clock (a restart
        # with its clock behind is still told from its predecessor).
        self._incarnation = secrets.randbits(63) or 1
        self._sequence = 0  # (the first push is 1)
        self._lease_s = lease_s  # the aggregator's, once it said
        self._weights = None  # Weights of the newest pull
        self._newest_known = -1
        self._last_step = -1
        self._lock = threading.Lock()  # guards _running against close()
        self._running = False
        self._closed = threading.Event()
        self._in_flight = None  # the pull or push under way, cancelled on failover
        self._cancelled = (None, "")  # the call _cancel_in_flight cancelled, and why
        self.steps = 0
        self.refused = 0

    @property
    def switches(self):
        """Times this worker moved to another aggregator (failing over or
        moving back)."""
        return self._route.switches

    @property
    def aggregator(self):
        """The address of the aggregator the worker talks to now."""
        return self._addresses[self._route.active]

    # --- the RPCs --------------------------------------------------------

    def _stub(self, address, credentials):
        channel = (grpc.secure_channel(address, credentials, _CHANNEL_OPTIONS) if credentials
                   else grpc.insecure_channel(address, _CHANNEL_OPTIONS))
        prefix = "/hips.v1.Aggregator/"
        return {
            "channel": channel,
            "push": channel.stream_unary(prefix + "PushGradient",
                                         request_serializer=lambda m: m.SerializeToString(),
                                         response_deserializer=pb.PushAck.FromString),
            "pull": channel.unary_stream(prefix + "PullWeights",
                                         request_serializer=lambda m: m.SerializeToString(),
                                         response_deserializer=pb.WeightsChunk.FromString),
            "heartbeat": channel.unary_unary(prefix + "Heartbeat",
                                             request_serializer=lambda m: m.SerializeToString(),
                                             response_deserializer=pb.HeartbeatReply.FromString),
        }

    def _heartbeat(self, leaving=False, index=None, timeout=None):
        """One heartbeat to aggregator `index` (the active one by default),
        waiting half a lease for the answer, as the C++ worker's do. One that
        joins adopts the lease the aggregator states; a `leaving` one (a
        goodbye, or a probe of the preferred aggregator) does not join."""
        stub = self._stubs[self._route.active if index is None else index]
        reply = stub["heartbeat"](
            pb.HeartbeatRequest(member_id=self.worker_id, incarnation=self._incarnation,
                                leaving=leaving),
            timeout=timeout or self._lease_s / 2, metadata=self._metadata)
        if reply.lease_ms > 0 and not leaving:
            self._lease_s = reply.lease_ms / 1000
        return reply

    def _answers(self, index, leaving=False, timeout=None):
        """Whether aggregator `index` answers a heartbeat (see _heartbeat)."""
        try:
            self._heartbeat(leaving=leaving, index=index, timeout=timeout)
            return True
        except (grpc.RpcError, ValueError):  # ValueError: its channel was closed
            return False

    def _heartbeat_loop(self, stop):
        """Holds the lease at the aggregator the worker is on, gives that
        one up after a lease of silence (cancelling the call in flight, so
        that a hung aggregator does not hold a long poll or a push until its
        deadline), and probes the preferred one while away (route.py)."""
        route = self._route
        route.begin(time.monotonic())
        while not stop.wait(self._lease_s / self._heartbeats_per_lease):
            now, lease_s = time.monotonic(), self._lease_s
            index = route.watch(now, lease_s)
            if route.heartbeat_result(index, self._answers(index), now, lease_s):
                self._cancel_in_flight(f"given up: the aggregator has not answered a heartbeat "
                                       f"for a lease ({lease_s:g} s)")
            if route.probe_due(now, lease_s):
                route.probe_result(self._answers(0, leaving=True, timeout=lease_s / 2))

    def _cancel_in_flight(self, why):
        call = self._in_flight
        if call is not None:
            self._cancelled = (call, why)
            call.cancel()

    def _raise_if_cancelled(self, call):
        """Raises _Cancelled saying why, if this worker cancelled `call`."""
        cancelled, why = self._cancelled
        if cancelled is call:
            raise _Cancelled(why) from None

    def _maybe_switch(self):
        """Makes the move the heartbeat thread asked for, between steps or
        between the attempts of a push: to the next aggregator (failing
        over) or back to the preferred one, first saying `leaving` to the
        one it leaves so that its rounds stop waiting for this worker. Joins
        the new one at once."""
        move = self._route.next_move()
        if move is None:
            return
        _log.warning("%s: moving from aggregator %s to %s (%s)", self.worker_id,
                     self._addresses[move.source], self._addresses[move.target],
                     "back to its own" if move.leave else "failing over")
        if move.leave:
            self._answers(move.source, leaving=True, timeout=_GOODBYE_TIMEOUT_S)
        self._answers(move.target)

    def pull(self, min_version=0, timeout=None, no_wait=False):
        """Waits (long poll, up to `timeout` seconds) for weights of at least
        `min_version` and loads them into the model (parameters and float
        buffers). Returns their Weights; raises grpc.RpcError with
        DEADLINE_EXCEEDED when none came in time, HipsError when the cluster
        trains another model. `timeout` defaults to long_poll_s; as the C++
        worker's, the pull waits for a connection within it (wait for ready)
        rather than fail at once while the aggregator (re)starts."""
        request = pb.PullWeightsRequest(
            requester_id=self.worker_id, min_version=min_version, no_wait=no_wait,
            incarnation=self._weights.incarnation if self._weights else 0)
        stream = self._stubs[self._route.active]["pull"](
            request, timeout=timeout or self._long_poll_s, metadata=self._metadata,
            wait_for_ready=True)
        self._in_flight = stream
        header, received = None, 0
        incoming = memoryview(self._incoming)
        try:
            for chunk in stream:
                if chunk.HasField("header"):
                    header = chunk.header
                    self._check_layout(header.layout)
                if received + len(chunk.data) > len(incoming):
                    raise HipsError(f"the weights have more floats than the model's "
                                    f"{self._num_floats}")
                incoming[received:received + len(chunk.data)] = chunk.data
                received += len(chunk.data)
        except grpc.RpcError:
            self._raise_if_cancelled(stream)
            raise
        finally:
            self._in_flight = None
        if header is None:
            raise HipsError("the aggregator sent weights without a header")
        if received != len(incoming):
            raise HipsError(f"weights of {received // 4} floats, the model has "
                            f"{self._num_floats}")
        flat = torch.from_numpy(np.frombuffer(self._incoming, dtype="<f4"))
        with torch.no_grad():
            offset = 0
            for _, tensor, _ in self._layout:
                n = tensor.numel()
                tensor.copy_(flat[offset:offset + n].view_as(tensor))
                offset += n
        if self._weights is not None and self._weights.incarnation != header.incarnation:
            self._newest_known = -1  # HQ restarted: versions start afresh
        self._weights = Weights(header)
        self._newest_known = max(self._newest_known, header.version)
        return self._weights

    def _check_layout(self, layout):
        def describe(name, shape, buffer):
            return f"'{name}'[{','.join(map(str, shape))}]" + (" (a buffer)" if buffer else "")

        ours = [(n, list(t.shape), b) for n, t, b in self._layout]
        theirs = [(t.name, list(t.shape), t.buffer) for t in layout.tensors]
        for i in range(max(len(ours), len(theirs))):
            a = describe(*theirs[i]) if i < len(theirs) else "none"
            b = describe(*ours[i]) if i < len(ours) else "none"
            if a != b:
                raise HipsError(f"the cluster trains a different model: tensor {i}: {a} at HQ, "
                                f"{b} in this worker's")

    def gradient(self):
        """The flat float32 vector a push sends: each parameter's .grad
        (zeros where it has none), then each float buffer's value. A view of
        the worker's buffer: the next call overwrites it."""
        flat = torch.from_numpy(self._flat)
        offset = 0
        with torch.no_grad():
            for _, tensor, buffer in self._layout:
                n = tensor.numel()
                source = tensor if buffer else tensor.grad
                if source is None:
                    flat[offset:offset + n].zero_()
                else:
                    flat[offset:offset + n].copy_(source.detach().reshape(-1))
                offset += n
        return self._flat

    def push(self, num_samples, loss_sum, step=None, retry=False):
        """Sends the model's gradient (the mean over `num_samples` examples,
        as loss.backward() of a mean loss leaves it) computed on the weights
        of the newest pull; `loss_sum` is the batch's summed loss. Returns
        the PushAck; raises grpc.RpcError if the aggregator refused it or
        no acknowledgement came within push_timeout_s (waiting for a
        connection included, as the C++ worker's push)."""
        if self._weights is None:
            raise HipsError("push before the first pull: no version to compute on")
        if not retry:
            self._sequence += 1
        self.gradient()
        data = self._flat_bytes
        header = pb.GradientHeader(
            sender_id=self.worker_id, version=self._weights.version, sample_count=num_samples,
            loss_sum=loss_sum, num_floats=self._num_floats, sequence=self._sequence,
            sender_incarnation=self._incarnation, retry=retry,
            step=self._last_step + 1 if step is None else step,
            hq_incarnation=self._weights.incarnation)

        def chunks():
            step_bytes = self._chunk_bytes
            yield pb.GradientChunk(header=header, data=data[:step_bytes].tobytes())
            for at in range(step_bytes, len(data), step_bytes):
                yield pb.GradientChunk(data=data[at:at + step_bytes].tobytes())

        call = self._stubs[self._route.active]["push"].future(
            chunks(), timeout=self._push_timeout_s, metadata=self._metadata, wait_for_ready=True)
        self._in_flight = call
        try:
            ack = call.result()
        except grpc.FutureCancelledError:
            self._raise_if_cancelled(call)
            raise _Cancelled("cancelled") from None
        except grpc.RpcError:
            self._raise_if_cancelled(call)
            raise
        finally:
            self._in_flight = None
        self._newest_known = max(self._newest_known, ack.newest_version)
        return ack

    # --- the whole loop --------------------------------------------------

    def _next_weights(self):
        """The weights the next gradient is computed on, as the C++ worker
        chooses them: sync waits for the next version, async goes on with
        what it has, ssp waits only when its weights are too stale."""
        w = self._weights
        if w is None:
            return self.pull(0)
        if w.mode == "sync":
            return self.pull(w.version + 1)
        freshest_useful = self._newest_known - (w.staleness if w.mode == "ssp" else 10**18)
        if w.version >= freshest_useful:
            try:
                return self.pull(w.version + 1, no_wait=True)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    return w
                raise
        return self.pull(max(w.version + 1, freshest_useful))

    def run(self, loader, loss_fn, max_steps=None):
        """Trains until HQ says training is done (or `max_steps`, or
        close()): pulls weights as the mode asks, computes
        loss_fn(model(x), y) in train mode on the next (x, y) of `loader`
        (cycled), pushes the gradient, retrying, failing over and moving
        back as the C++ worker does. `loss_fn` returns the batch's MEAN
        loss. Returns the number of gradients computed (pushed or refused).

        Raises HipsRpcError for a pull refused for good (a wrong token...)
        or a pull or push that failed max_attempts times in a row, HipsError
        for weights of another model or a mode this worker lacks."""
        if not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
        if max_steps is not None:
            checks.check_int_at_least("max_steps", max_steps, 0)
        with self._lock:
            if self._closed.is_set():
                raise HipsError("run() on a closed worker")
            self._running = True
        stop_heartbeats = threading.Event()
        heartbeats = threading.Thread(target=self._heartbeat_loop, args=(stop_heartbeats,),
                                      daemon=True)
        try:
            self._join()
            heartbeats.start()
            self._loop(iter(loader), loader, loss_fn, max_steps)
        finally:
            # No heartbeat after the goodbye: it would join the aggregator again.
            stop_heartbeats.set()
            if heartbeats.is_alive():
                heartbeats.join()
            # Leave at once rather than hold up the aggregator's rounds for a lease.
            self._answers(self._route.active, leaving=True, timeout=_GOODBYE_TIMEOUT_S)
            self._finish_running()
        return self.steps

    def _join(self):
        """Joins the aggregator; a restarted worker's step numbers go on
        where HQ last saw them. Not answering is no error here: the pulls
        that follow wait for the aggregator, and retry."""
        try:
            joined = self._heartbeat()
        except (grpc.RpcError, ValueError):
            return
        if self.worker_id in joined.data_positions:
            self._last_step = max(self._last_step, joined.data_positions[self.worker_id] - 1)

    def _loop(self, batches, loader, loss_fn, max_steps):
        """run()'s steps, each between two chances to move (_maybe_switch)."""
        pulls = self._retries()
        while (max_steps is None or self.steps < max_steps) and not self._closed.is_set():
            self._maybe_switch()
            w = self._weights_or_none(pulls)
            if w is None:
                continue
            if w.training_done:
                return
            if w.mode not in ("sync", "async", "ssp"):
                # fedavg's local steps and delta pushes are the C++
                # worker's (docs/wan.md); a gradient here would be
                # applied as a delta.
                raise HipsError(f"the cluster trains in mode {w.mode}, which this Python "
                                "worker does not implement (use hips-worker, or sync, "
                                "async or ssp)")
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            step = (max(w.version, self._last_step + 1) if w.mode == "sync"
                    else self._last_step + 1)
            self.model.train()
            for p in self.model.parameters():
                p.grad = None
            loss = loss_fn(self.model(x), y)
            loss.backward()
            if not self._push_with_retry(len(x), float(loss) * len(x), step):
                return  # closed meanwhile
            self._last_step = step
            self.steps += 1

    def _retries(self):
        return Retries(self._min_backoff_s, self._max_backoff_s, self._max_attempts)

    def _weights_or_none(self, pulls):
        """The next weights to compute on, or None to go round again: the
        long poll ran out (no failure: a round can take longer), or a
        retryable failure, after its backoff. Raises HipsRpcError when the
        failure is final or max_attempts pulls failed in a row."""
        try:
            w = self._next_weights()
        except grpc.RpcError as e:
            if self._closed.is_set() or e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return None
            self._closed.wait(pulls.failed("PullWeights", e, self.aggregator))
            return None
        pulls.succeeded()
        return w

    def _push_with_retry(self, num_samples, loss_sum, step):
        """Pushes the gradient until an aggregator answers. A refusal is
        final: the aggregator counted it, the worker counts it in
        `refused` and moves on. An unknown outcome (a broken stream, a
        deadline, a failover) is retried with backoff, marked as a retry
        (HQ applies it at most once), wherever the worker is by then; with
        a failover pending, at once. False if the worker was closed."""
        pushes = self._retries()
        retry = False
        while not self._closed.is_set():
            try:
                self.push(num_samples, loss_sum, step=step, retry=retry)
                return True
            except grpc.RpcError as e:
                if self._closed.is_set():
                    break
                if not is_retryable(e.code()):
                    self.refused += 1
                    return True
                wait = pushes.failed("PushGradient", e, self.aggregator)
                # The outcome is unknown: every further attempt says so.
                retry = True
                if not self._route.failing_over and self._closed.wait(wait):
                    break
                self._maybe_switch()
        return False

    def close(self):
        """Closes the worker's channels. From another thread while run()
        runs, it also stops run(): the call in flight is cancelled, run()
        says goodbye to the aggregator and returns, and closes them."""
        with self._lock:
            self._closed.set()
            running = self._running
        self._cancel_in_flight("the worker was closed")
        if not running:
            self._close_channels()

    def _finish_running(self):
        with self._lock:
            self._running = False
            closed = self._closed.is_set()
        if closed:
            self._close_channels()

    def _close_channels(self):
        for stub in self._stubs:
            stub["channel"].close()
