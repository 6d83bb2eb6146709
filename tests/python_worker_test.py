#!/usr/bin/python3
"""The Python worker library (worker/python/hips, docs/python.md).

    python_worker_test.py --bin BUILD/bin --modules BUILD/testdata/modules --src SOURCE_DIR

1. hips_pb2.py is what protoc makes of proto/hips/v1/hips.proto today.
2. Bad arguments to hips.Worker raise TypeError or ValueError naming them;
   a token file others may read is refused, one of mode 0600 taken;
   save_module writes a file torch.jit.load reads back with the same layout.
   The failover and move-back policy (hips.route.Route) and the retry rules
   (hips.retry) on a fake clock, without a cluster.
3. Against a fake aggregator (a Python gRPC server that serves one version
   and records pushes): a C++ hips-worker and hips.Worker, on the same
   weights and the same batch (the whole 64-example data set), push the same
   gradient and the same BatchNorm running statistics to float tolerance; a
   worker of another model is refused naming the first tensor and pushes
   nothing.
   Against scripted fake aggregators: a pull or push failing with a
   retryable status ends in hips.HipsRpcError after max_attempts attempts
   (so does an address where nothing listens), a final status at once, a
   refused push is counted and not repeated, close() stops run(); a worker
   whose aggregator stops answering fails over, pushing the same gradient
   as a retry, and moves back once it answers again, saying `leaving`.
4. A mixed cluster (hips-hq, 2 aggregators, 2 C++ and 2 Python workers
   running examples/python_worker.py) trains Fashion-MNIST in sync: every
   round holds all 4 gradients and HQ's final test accuracy is >= 0.85; a
   worker with a wrong token is refused at once.
5. Two Python workers each told of both aggregators: when aggregator 0 is
   killed its worker fails over to aggregator 1 and training finishes;
   in another cluster, aggregator 0 is then started again on its port and
   its worker moves back to it.
Every wait is bounded; only processes started here are signalled, by pid.
"""
import argparse
import concurrent.futures
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
import numpy as np
import torch
import torch.nn.functional as F

import waiting

failures = []


def check(condition, message):
    if not condition:
        failures.append(message)
        print("FAIL: " + message, flush=True)
    return condition


def write_token(path):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    with open(path) as f:
        return f.read().strip()


class FakeAggregator:
    """Serves version 0 of `model`'s weights in sync mode, records each push
    (header and floats), then answers the next pull with training_done."""

    def __init__(self, pb, model, token):
        self.pb, self.token = pb, token
        self.layout = pb.ModelLayout(tensors=[
            pb.TensorSpec(name=n, shape=list(t.shape), buffer=b)
            for n, t, b in hips.layout_of(model)])
        self.weights = np.concatenate(
            [t.detach().reshape(-1).numpy() for _, t, _ in hips.layout_of(model)]).astype("<f4")
        self.pushes, self.bad_token = [], 0
        self.lock = threading.Lock()
        self.server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
        ser = lambda m: m.SerializeToString()  # noqa: E731
        handlers = {
            "Heartbeat": grpc.unary_unary_rpc_method_handler(
                self.heartbeat, pb.HeartbeatRequest.FromString, ser),
            "PullWeights": grpc.unary_stream_rpc_method_handler(
                self.pull, pb.PullWeightsRequest.FromString, ser),
            "PushGradient": grpc.stream_unary_rpc_method_handler(
                self.push, pb.GradientChunk.FromString, ser),
        }
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler("hips.v1.Aggregator", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def authorized(self, context):
        if dict(context.invocation_metadata()).get("authorization") == "Bearer " + self.token:
            return True
        with self.lock:
            self.bad_token += 1
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "no or wrong token")

    def heartbeat(self, request, context):
        self.authorized(context)
        return self.pb.HeartbeatReply(lease_ms=2000, version=0)

    def pull(self, request, context):
        self.authorized(context)
        version = 0 if request.min_version <= 0 else 1
        header = self.pb.WeightsHeader(
            version=version, layout=self.layout, num_floats=self.weights.size,
            training_done=version > 0, mode=self.pb.ModeConfig(mode=self.pb.MODE_SYNC),
            incarnation=7)
        data = self.weights.tobytes()
        yield self.pb.WeightsChunk(header=header, data=data[:40])
        yield self.pb.WeightsChunk(data=data[40:])

    def push(self, chunks, context):
        self.authorized(context)
        header, parts = None, []
        for chunk in chunks:
            if chunk.HasField("header"):
                header = chunk.header
            parts.append(chunk.data)
        with self.lock:
            self.pushes.append((header, np.frombuffer(b"".join(parts), dtype="<f4"),
                                len(parts)))
        return self.pb.PushAck(version=header.version, newest_version=0)

    def stop(self):
        self.server.stop(grace=None)


def write_npz(path, x, y):
    np.savez(path, x=x, y=y)
    return path


def library_checks(args, tmp):
    gen = subprocess.run([os.path.join(args.src, "scripts", "gen_python_proto.sh"), "--check"],
                         capture_output=True, text=True, timeout=60)
    check(gen.returncode == 0, "hips_pb2.py is not current: " + gen.stderr.strip())
    model = torch.jit.load(os.path.join(args.modules, "batchnorm.pt"))
    names = [(n, b) for n, _, b in hips.layout_of(model)]
    check(names == [("1.weight", False), ("1.bias", False), ("2.weight", False),
                    ("2.bias", False), ("2.running_mean", True), ("2.running_var", True)],
          "layout_of(batchnorm.pt) is %s" % names)
    saved = os.path.join(tmp, "saved.pt")
    hips.save_module(torch.nn.Sequential(torch.nn.Linear(3, 2)), saved)
    check([n for n, _, _ in hips.layout_of(torch.jit.load(saved))] == ["0.weight", "0.bias"],
          "save_module did not write a module torch.jit.load reads with its layout")


def refused(make, error, words, what):
    """Checks that make() raises `error` with each of `words` in its message."""
    try:
        worker = make()
    except error as e:
        check(all(w in str(e) for w in words),
              "%s: %s %r does not say %s" % (what, type(e).__name__, str(e), words))
        return
    except Exception as e:  # noqa: BLE001 (the wrong kind is a failure, not a crash)
        check(False, "%s raised %s %r, not %s" % (what, type(e).__name__, str(e),
                                                   error.__name__))
        return
    getattr(worker, "close", lambda: None)()
    check(False, "took " + what)


def argument_checks():
    """Every constructor argument is checked before anything is dialled,
    and the error names the argument."""
    model = torch.nn.Linear(4, 3)
    token = "t" * 32
    cases = [
        ({"model": "model.pt"}, TypeError, ["model", "torch.nn.Module"]),
        ({"model": torch.nn.ReLU()}, ValueError, ["model", "nothing to train"]),
        ({"aggregator": 7001}, TypeError, ["aggregator", "str"]),
        ({"aggregator": "127.0.0.1"}, ValueError, ["aggregator='127.0.0.1'", "no port"]),
        ({"aggregator": "127.0.0.1:0"}, ValueError, ["aggregator", "[1, 65535]"]),
        ({"aggregator": "127.0.0.1:70000"}, ValueError, ["aggregator", "[1, 65535]"]),
        ({"aggregator": "-bad:80"}, ValueError, ["aggregator", "not a host name"]),
        ({"aggregator": "unix:"}, ValueError, ["aggregator", "no socket path"]),
        ({"failover": "127.0.0.1:7002"}, TypeError, ["failover", "list"]),
        ({"failover": ["127.0.0.1:7002", "nohost"]}, ValueError, ["failover[1]", "no port"]),
        ({"failover": 7002}, TypeError, ["failover", "list"]),
        ({"worker_id": ""}, ValueError, ["worker_id", "[A-Za-z0-9._-]"]),
        ({"worker_id": "py 0"}, ValueError, ["worker_id", "'py 0'"]),
        ({"worker_id": "w" * 129}, ValueError, ["worker_id", "1 to 128"]),
        ({"worker_id": 0}, TypeError, ["worker_id", "str"]),
        ({"token": "short"}, ValueError, ["token", "16 to 4096"]),
        ({"token": "two words, not one token"}, ValueError, ["token", "printable ASCII"]),
        ({"token": token, "token_file": "/nonexistent"}, ValueError, ["token", "not both"]),
        ({"token_file": "/nonexistent/token"}, ValueError, ["/nonexistent/token"]),
        ({"tls_cert": "/c.pem"}, ValueError, ["tls_cert and tls_key"]),
        ({"tls_cert": "/c.pem", "tls_key": "/k.pem"}, ValueError, ["tls_ca"]),
        ({"tls_ca": "/nonexistent/ca.pem"}, ValueError, ["CA certificate",
                                                         "/nonexistent/ca.pem"]),
        ({"chunk_bytes": 6}, ValueError, ["chunk_bytes", "multiple of 4"]),
        ({"chunk_bytes": 0}, ValueError, ["chunk_bytes", "got 0"]),
        ({"chunk_bytes": 128 << 20}, ValueError, ["chunk_bytes", "64 MiB"]),
        ({"chunk_bytes": 1024.0}, TypeError, ["chunk_bytes", "int"]),
        ({"long_poll_s": 0}, ValueError, ["long_poll_s", "positive"]),
        ({"push_timeout_s": -1}, ValueError, ["push_timeout_s", "positive"]),
        ({"push_timeout_s": float("nan")}, ValueError, ["push_timeout_s"]),
        ({"lease_s": "2"}, TypeError, ["lease_s"]),
        ({"lease_s": True}, TypeError, ["lease_s"]),
        ({"min_backoff_s": 0}, ValueError, ["min_backoff_s"]),
        ({"max_backoff_s": float("inf")}, ValueError, ["max_backoff_s"]),
        ({"min_backoff_s": 3.0, "max_backoff_s": 2.0}, ValueError,
         ["min_backoff_s", "max_backoff_s"]),
        ({"heartbeats_per_lease": 1}, ValueError, ["heartbeats_per_lease", "at least 2"]),
        ({"heartbeats_per_lease": 4.0}, TypeError, ["heartbeats_per_lease", "int"]),
        ({"max_attempts": 0}, ValueError, ["max_attempts", "at least 1"]),
        ({"max_attempts": "3"}, TypeError, ["max_attempts"]),
        ({"return_to_preferred": "yes"}, TypeError, ["return_to_preferred"]),
        ({"aggregator": "10.0.0.1:7001"}, ValueError, ["refusing to dial 10.0.0.1:7001",
                                                       "without TLS", "insecure=True"]),
        ({"failover": ["hq.example:7002"]}, ValueError, ["hq.example:7002", "without TLS"]),
        ({"aggregator": "10.0.0.1:7001", "insecure": 1}, TypeError, ["insecure"]),
    ]
    for change, error, words in cases:
        kwargs = {"model": model, "aggregator": "127.0.0.1:7001", "worker_id": "py-0"}
        kwargs.update(change)
        refused(lambda: hips.Worker(kwargs.pop("model"), kwargs.pop("aggregator"),
                                    kwargs.pop("worker_id"), **kwargs),
                error, words, "hips.Worker with %s" % {k: v if len(repr(v)) < 40 else "..."
                                                       for k, v in change.items()})
    # What the daemons accept is accepted.
    worker = hips.Worker(model, "localhost:7001", "py-0.a_b", token=token,
                         failover=("[::1]:7002", "unix:/tmp/hips.sock"), chunk_bytes=64,
                         long_poll_s=1, push_timeout_s=60, lease_s=0.5, heartbeats_per_lease=2,
                         min_backoff_s=0.01, max_backoff_s=0.01, max_attempts=1,
                         return_to_preferred=False)
    check(worker.aggregator == "localhost:7001" and worker.switches == 0,
          "a new worker is on %s after %d moves" % (worker.aggregator, worker.switches))
    worker.close()
    # Plaintext to another machine only when asked for.
    hips.Worker(model, "10.0.0.1:7001", "py-1", insecure=True).close()
    try:
        worker.run([], F.cross_entropy)
        check(False, "run() on a closed worker ran")
    except hips.HipsError:
        pass
    # (Nothing listens at port 1: were the checks missing, run would end at
    # its first failed pull, not hang.)
    worker = hips.Worker(model, "127.0.0.1:1", "py-0", lease_s=0.1, max_attempts=1)
    refused(lambda: worker.run([], "cross_entropy"), TypeError, ["loss_fn"],
            "run() with a loss_fn str")
    refused(lambda: worker.run([], F.cross_entropy, max_steps=-1), ValueError, ["max_steps"],
            "run() with max_steps -1")
    worker.close()


def token_file_checks(tmp):
    """A token file is read as the daemons read theirs (services/net/
    security.cc): one others may read is refused naming the file and the
    fix, the token must be 16 to 4096 printable characters."""
    from hips import checks
    model = torch.nn.Linear(4, 3)
    path = os.path.join(tmp, "worker.token")
    write_token(path)

    def make():
        return hips.Worker(model, "127.0.0.1:7001", "py-0", token_file=path)
    for mode in (0o644, 0o640, 0o604, 0o660):
        os.chmod(path, mode)
        refused(make, ValueError, [path, "may be read by other users", "chmod 600"],
                "hips.Worker with a token file of mode %o" % mode)
    for mode in (0o600, 0o400):
        os.chmod(path, mode)
        try:
            make().close()
        except ValueError as e:
            check(False, "a token file of mode %o was refused: %s" % (mode, e))
    os.chmod(path, 0o600)
    for contents, words in ((b"", ["16 to 4096"]), (b"0123456789\n", ["16 to 4096"]),
                            (b"  " + b"a" * 32 + b"\n", ["printable ASCII"]),
                            (b"a" * 16 + b"\n" + b"b" * 16 + b"\n", ["one line"])):
        with open(path, "wb") as f:
            f.write(contents)
        refused(make, ValueError, [path] + words,
                "hips.Worker with a token file holding %r" % contents[:20])
    # A Kubernetes Secret mounted for a non-root container: root's file,
    # readable by the container's group (0440/0640), is taken; not by others.
    problem = checks.token_file_mode_problem
    check(problem(0, 0o100640, 1000) == "" and problem(0, 0o100440, 1000) == "",
          "a root-owned 0640 token file read through its group was refused")
    check("chmod 640" in problem(0, 0o100644, 1000) and "chmod 640" in problem(0, 0o100660, 1000),
          "a root-owned token file others may read (or its group write) was taken")
    check("chmod 600" in problem(1000, 0o100640, 1000) and problem(1000, 0o100600, 1000) == "",
          "the owner-only rule for one's own token file")


def route_checks():
    """The failover and move-back decisions (hips.route.Route, the C++
    worker's HeartbeatLoop and MaybeSwitch) and the retry rules, on a fake
    clock: no cluster, no sleeping."""
    from hips.retry import Backoff, Retries
    from hips.route import Move, Route
    lease = 1.0

    def heard(r, answered, now):
        """A heartbeat at `now`, as the heartbeat thread sends it."""
        return r.heartbeat_result(r.watch(now, lease), answered, now, lease)

    r = Route(3, now=0.0)
    r.begin(0.0)
    check(r.watch(0.25, lease) == 0, "the route does not start on the first aggregator")
    check(not heard(r, False, 0.25) and not heard(r, False, 1.0),
          "an aggregator was given up before a lease of silence")
    check(heard(r, False, 1.25), "not given up after a lease of silence")
    check(r.failing_over and not heard(r, False, 1.5), "a failover was asked for twice")
    check(r.next_move() == Move(0, 1, False) and r.active == 1 and r.switches == 1,
          "failing over from 0 did not go to 1")
    check(r.next_move() is None, "a move made twice")
    # On 1: it gets a full lease; the preferred one is probed two leases on.
    check(r.watch(1.5, lease) == 1, "the heartbeats do not follow the move")
    check(not heard(r, False, 2.25), "the new aggregator got no full lease")
    check(not r.probe_due(3.0, lease) and r.probe_due(3.5, lease),
          "the preferred aggregator not probed two leases after the move")
    r.probe_result(False)
    check(not r.probe_due(4.0, lease) and r.next_move() is None,
          "probed again within two leases, or moved back without an answer")
    check(r.probe_due(5.5, lease), "the second probe is not two leases after the first")
    r.probe_result(True)
    check(not r.probe_due(7.5, lease), "probed while a move back is pending")
    check(r.next_move() == Move(1, 0, True) and r.active == 0 and r.switches == 2,
          "not moved back to 0 saying leaving to 1")
    r.watch(8.0, lease)
    check(not r.probe_due(100.0, lease), "probed the preferred aggregator while on it")
    # Failing over wraps around, and comes before a pending move back.
    r = Route(2, now=0.0)
    r.begin(0.0)
    heard(r, False, 1.5)
    check(r.next_move() == Move(0, 1, False), "no failover from 0 to 1")
    heard(r, True, 2.0)
    check(r.probe_due(4.0, lease), "no probe")
    r.probe_result(True)
    heard(r, True, 4.0)
    heard(r, False, 5.5)
    check(r.next_move() == Move(1, 0, False), "a failover from 1 did not wrap around to 0")
    # A heartbeat to the aggregator the worker left while it was under way
    # does not make it leave the one it moved to.
    r = Route(2, now=0.0)
    r.begin(0.0)
    heard(r, False, 1.25)
    index = r.watch(1.5, lease)
    r.next_move()
    check(not r.heartbeat_result(index, False, 1.5, lease) and not r.failing_over and
          r.next_move() is None, "a stale heartbeat failure moved the worker on")
    # return_to_preferred=False: never probed; one aggregator: nowhere to
    # go, but the call in flight is still cancelled (and retried there).
    r = Route(2, return_to_preferred=False, now=0.0)
    r.begin(0.0)
    heard(r, False, 1.5)
    r.next_move()
    heard(r, True, 2.0)
    check(not r.probe_due(10.0, lease), "probed with return_to_preferred=False")
    r = Route(1, now=0.0)
    r.begin(0.0)
    check(heard(r, False, 1.5) and r.next_move() is None,
          "a lone aggregator's silence does not cancel the call in flight")

    top = Backoff(0.05, 0.3, uniform=lambda low, high: high)
    waits = [round(top.next(), 3) for _ in range(5)]
    top.reset()
    check(waits == [0.05, 0.1, 0.2, 0.3, 0.3] and top.next() == 0.05,
          "backoff bounds %s, not doubling from 0.05 to 0.3 (and reset)" % waits)

    class Failure(grpc.RpcError):
        def __init__(self, code):
            self._code = code

        def code(self):
            return self._code

        def details(self):
            return "details of " + self._code.name
    retries = Retries(0.01, 0.02, max_attempts=3)
    for code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                 grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
                 grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN):
        retries.succeeded()
        check(0 <= retries.failed("PushGradient", Failure(code), "a:1") <= 0.01,
              "%s is not retried after a backoff" % code.name)
    retries.succeeded()
    for code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED,
                 grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION,
                 grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED,
                 grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.ALREADY_EXISTS,
                 grpc.StatusCode.DATA_LOSS):
        try:
            retries.failed("PullWeights", Failure(code), "agg:7001")
            check(False, "%s was retried" % code.name)
        except hips.HipsRpcError as e:
            check(e.final and e.code == code and "PullWeights" in str(e) and
                  "agg:7001" in str(e) and code.name in str(e), "a final %s: %s" % (code.name, e))
        retries.succeeded()
    unavailable = Failure(grpc.StatusCode.UNAVAILABLE)
    retries.failed("PullWeights", unavailable, "a:1")
    retries.failed("PullWeights", unavailable, "a:1")
    try:
        retries.failed("PullWeights", unavailable, "a:1")
        check(False, "a third failure with max_attempts=3 was retried")
    except hips.HipsRpcError as e:
        check(not e.final and e.attempts == 3 and "max_attempts=3" in str(e),
              "the third failure: %s" % e)
    unbounded = Retries(0.01, 0.02)
    for _ in range(1000):
        unbounded.failed("PullWeights", unavailable, "a:1")
    check(unbounded.failures == 1000, "max_attempts=None gave up")


class ScriptedAggregator(FakeAggregator):
    """A fake aggregator whose answers a test sets: weights of the
    versions it published (a pull for a newer one waits, as a long poll, and
    runs out), a status for every pull, a handler for pushes, and whether
    it answers at all (unreachable: every call fails UNAVAILABLE). Records
    heartbeats, pulls and pushes."""

    def __init__(self, pb, model, token, lease_ms=200):
        self.lease_ms = lease_ms
        self.reachable = True
        self.pull_error = None  # a StatusCode every pull fails with
        self.push_handler = None  # header -> None (acked) or (StatusCode, details)
        self.published = (-1, False)  # (newest version, training done)
        self.heartbeats, self.pulls = [], 0
        self.changed = threading.Condition()
        super().__init__(pb, model, token)
        self.lock = self.changed  # one lock for every record
        self.address = "127.0.0.1:%d" % self.port

    def publish(self, version, done=False):
        with self.changed:
            self.published = (version, done)
            self.changed.notify_all()

    def set_reachable(self, reachable):
        with self.changed:
            self.reachable = reachable

    def answer(self, context):
        with self.changed:
            reachable = self.reachable
        if not reachable:
            context.abort(grpc.StatusCode.UNAVAILABLE, "unreachable (scripted)")
        self.authorized(context)

    def heartbeat(self, request, context):
        self.answer(context)
        with self.changed:
            self.heartbeats.append((request.member_id, request.leaving))
        return self.pb.HeartbeatReply(lease_ms=self.lease_ms)

    def pull(self, request, context):
        self.answer(context)
        with self.changed:
            self.pulls += 1
            error = self.pull_error
            # A long poll: bounded by the caller's deadline (and 10 s).
            self.changed.wait_for(lambda: self.published[0] >= request.min_version,
                                  min(10.0, context.time_remaining() or 10.0))
            version, done = self.published
        if error is not None:
            context.abort(error, "scripted %s" % error.name)
        if version < request.min_version:
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "no such version yet")
        header = self.pb.WeightsHeader(
            version=version, layout=self.layout, num_floats=self.weights.size,
            training_done=done, mode=self.pb.ModeConfig(mode=self.pb.MODE_SYNC), incarnation=7)
        yield self.pb.WeightsChunk(header=header, data=self.weights.tobytes())

    def push(self, chunks, context):
        self.answer(context)
        header = None
        for chunk in chunks:
            if chunk.HasField("header"):
                header = chunk.header
        with self.changed:
            self.pushes.append(header)
            handler = self.push_handler
        outcome = handler(header) if handler is not None else None
        if outcome is not None:
            context.abort(*outcome)
        return self.pb.PushAck(version=header.version, newest_version=header.version)


def tiny_batches():
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.normal(size=(8, 4)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, size=8).astype(np.int64))
    return [(x, y)]


def run_in_thread(worker, **kwargs):
    """Starts worker.run on a thread; returns (thread, outcome), outcome
    filled with "steps" or "error" when run ends."""
    outcome = {}

    def body():
        try:
            outcome["steps"] = worker.run(tiny_batches(), F.cross_entropy, **kwargs)
        except Exception as e:  # noqa: BLE001 (reported by the test)
            outcome["error"] = e
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, outcome


def finish(worker, thread, seconds, what):
    """Waits (bounded) for run() to end; a run that does not is closed and
    reported."""
    thread.join(seconds)
    if not check(not thread.is_alive(), "%s: run() still running after %g s" % (what, seconds)):
        worker.close()
        thread.join(10)


def retry_checks(pb, tmp):
    """Bounded retries against scripted aggregators: the final error names
    the RPC, the status and the aggregator, after max_attempts attempts."""
    model = torch.nn.Linear(4, 3)
    token_file = os.path.join(tmp, "retry.token")
    token = write_token(token_file)
    fast = {"token_file": token_file, "min_backoff_s": 0.01, "max_backoff_s": 0.05,
            "lease_s": 0.2, "long_poll_s": 1.0}

    def expect_error(worker, rpc, code, attempts, final, seconds, what):
        start = time.monotonic()
        thread, outcome = run_in_thread(worker)
        finish(worker, thread, seconds, what)
        took = time.monotonic() - start
        e = outcome.get("error")
        if check(isinstance(e, hips.HipsRpcError), "%s: run() ended with %r" % (what, outcome)):
            check(e.rpc == rpc and e.code == code and e.attempts == attempts and
                  e.final == final and rpc in str(e) and code.name in str(e) and
                  worker.aggregator in str(e), "%s: %s" % (what, e))
            print("%s: %.2f s: %s" % (what, took, e), flush=True)
        worker.close()
        return e

    agg = ScriptedAggregator(pb, model, token)
    try:
        # Every pull INTERNAL: three attempts, then the error.
        agg.pull_error = grpc.StatusCode.INTERNAL
        agg.publish(0)
        expect_error(hips.Worker(model, agg.address, "py-retry", max_attempts=3, **fast),
                     "PullWeights", grpc.StatusCode.INTERNAL, 3, False, 20,
                     "pulls failing INTERNAL")
        check(agg.pulls == 3, "%d pulls made with max_attempts=3" % agg.pulls)

        # Every push INTERNAL: the same gradient three times, the last two
        # marked as retries.
        agg.pull_error = None
        agg.push_handler = lambda h: (grpc.StatusCode.INTERNAL, "scripted INTERNAL")
        expect_error(hips.Worker(model, agg.address, "py-retry", max_attempts=3, **fast),
                     "PushGradient", grpc.StatusCode.INTERNAL, 3, False, 20,
                     "pushes failing INTERNAL")
        check([h.retry for h in agg.pushes] == [False, True, True] and
              len({h.sequence for h in agg.pushes}) == 1,
              "the attempts of one push: %s" % [(h.retry, h.sequence) for h in agg.pushes])

        # A final status is not retried: a wrong token ends the run at once.
        agg.pulls = 0
        wrong = dict(fast, token_file=None, token="w" * 32)
        expect_error(hips.Worker(model, agg.address, "py-intruder", max_attempts=3, **wrong),
                     "PullWeights", grpc.StatusCode.UNAUTHENTICATED, 1, True, 20,
                     "a wrong token")
        check(agg.pulls == 0, "a pull with a wrong token was answered")

        # A refused push is counted and not repeated; the worker goes on.
        agg.pushes.clear()
        agg.push_handler = lambda h: (grpc.StatusCode.FAILED_PRECONDITION, "its round closed")
        worker = hips.Worker(model, agg.address, "py-refused", max_attempts=3, **fast)
        thread, outcome = run_in_thread(worker, max_steps=1)
        finish(worker, thread, 20, "a refused push")
        check(outcome.get("steps") == 1 and worker.refused == 1 and len(agg.pushes) == 1,
              "a refused push: %s, %d refused, %d pushes" % (outcome, worker.refused,
                                                               len(agg.pushes)))
        worker.close()

        # close() from another thread ends a run that waits (here, for a
        # version that never comes).
        agg.push_handler = None
        agg.pulls = 0
        agg.publish(-1)
        worker = hips.Worker(model, agg.address, "py-closed", **fast)
        thread, outcome = run_in_thread(worker)
        check(waiting.wait_for(lambda: agg.pulls >= 1, 20), "the worker never pulled")
        worker.close()
        finish(worker, thread, 10, "close() while run() waits")
        check(outcome.get("steps") == 0, "run() stopped by close(): %s" % outcome)
        check(("py-closed", True) in agg.heartbeats, "a closed worker did not say leaving")
    finally:
        agg.stop()

    # Nothing listens: each attempt waits for a connection until the
    # heartbeats have gone unanswered for a lease, then it is given up.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nowhere = "127.0.0.1:%d" % s.getsockname()[1]
    e = expect_error(hips.Worker(model, nowhere, "py-alone", max_attempts=3, **fast),
                     "PullWeights", grpc.StatusCode.CANCELLED, 3, False, 20,
                     "an address where nothing listens")
    check(e is None or "has not answered" in str(e), "the error does not say why: %s" % e)


def move_back_checks(pb, tmp):
    """The C++ worker's failover test (WorkerTest.FailsOverWhenItsAggregator
    StopsAnsweringAndComesBackWhenItDoes) for hips.Worker, on two scripted
    aggregators with a 0.2 s lease."""
    model = torch.nn.Linear(4, 3)
    token_file = os.path.join(tmp, "move.token")
    token = write_token(token_file)
    first = ScriptedAggregator(pb, model, token)
    second = ScriptedAggregator(pb, model, token)
    worker = None
    try:
        first.publish(0)
        second.publish(0)

        def dies(header):  # the first aggregator dies while the push is on its way
            first.set_reachable(False)
            return grpc.StatusCode.UNAVAILABLE, "connection reset"
        first.push_handler = dies
        worker = hips.Worker(model, first.address, "py-mover", failover=[second.address],
                             token_file=token_file, lease_s=0.2, long_poll_s=0.5,
                             min_backoff_s=0.01, max_backoff_s=0.1)
        start = time.monotonic()
        thread, outcome = run_in_thread(worker)
        if not check(waiting.wait_for(lambda: second.pushes, 20),
                     "no push reached the second aggregator: %s" % outcome):
            return
        failed_over = time.monotonic() - start
        lost, retried = first.pushes[0], second.pushes[0]
        check(retried.retry and retried.sequence == lost.sequence and retried.version == 0,
              "the push after failing over is not the lost one as a retry: %s / %s"
              % (lost, retried))
        check(worker.switches == 1 and worker.aggregator == second.address,
              "after failing over: %d moves, on %s" % (worker.switches, worker.aggregator))
        check(second.heartbeats and second.heartbeats[0] == ("py-mover", False),
              "it did not join the second aggregator first: %s" % second.heartbeats[:3])

        # The first one is back: the worker returns (probing every two
        # leases), saying leaving to the second, and trains there again.
        first.push_handler = None
        first.set_reachable(True)
        back = time.monotonic()
        first.publish(1)
        if not check(waiting.wait_for(lambda: len(first.pushes) >= 2, 20),
                     "the worker did not move back: %s, %d moves" % (outcome, worker.switches)):
            return
        moved_back = time.monotonic() - back
        check(first.pushes[1].version == 1 and not first.pushes[1].retry,
              "the push after moving back: %s" % first.pushes[1])
        check(worker.switches == 2 and worker.aggregator == first.address,
              "after moving back: %d moves, on %s" % (worker.switches, worker.aggregator))
        check(("py-mover", True) in second.heartbeats, "it left the second without a word")
        check(("py-mover", True) in first.heartbeats,
              "the first was not probed with a leaving heartbeat")
        first.publish(2, done=True)
        finish(worker, thread, 20, "moving back")
        check(outcome.get("steps") == 2, "the run: %s" % outcome)
        print("failover to the second scripted aggregator after %.2f s, back %.2f s after the "
              "first answered again (lease 0.2 s)" % (failed_over, moved_back), flush=True)
    finally:
        if worker is not None:
            worker.close()
        first.stop()
        second.stop()


def same_gradient_checks(args, tmp, pb):
    """The C++ and the Python worker on the same weights and batch."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(64, 4)).astype(np.float32)
    y = rng.integers(0, 3, size=64).astype(np.int64)
    y[:3] = [0, 1, 2]  # every class present
    data = write_npz(os.path.join(tmp, "tiny.npz"), x, y)
    module = os.path.join(args.modules, "batchnorm.pt")
    token_file = os.path.join(tmp, "fake.token")
    token = write_token(token_file)
    model = torch.jit.load(module)
    with torch.no_grad():  # weights other than the file's, and non-trivial statistics
        for _, t, b in hips.layout_of(model):
            t.copy_(torch.rand_like(t) + 0.5 if b else torch.randn_like(t))
    fake = FakeAggregator(pb, model, token)
    try:
        cpp = subprocess.run(
            [os.path.join(args.bin, "hips-worker"), "--aggregator=127.0.0.1:%d" % fake.port,
             "--id=cpp-0", "--model=torchscript", "--model_file=" + module, "--data=npz",
             "--train_data=" + data, "--test_data=" + data, "--batch_size=64",
             "--chunk_bytes=64", "--token_file=" + token_file, "--metrics_port=-1"],
            capture_output=True, text=True, timeout=120)
        check(cpp.returncode == 0, "hips-worker against the fake aggregator: exit %d: %s" %
              (cpp.returncode, cpp.stderr[-2000:]))
        py = hips.Worker(torch.jit.load(module), "127.0.0.1:%d" % fake.port, "py-0",
                         token_file=token_file, chunk_bytes=64)
        steps = py.run([(torch.from_numpy(x), torch.from_numpy(y))], F.cross_entropy,
                       max_steps=1)
        py.close()
        check(steps == 1, "the Python worker pushed %d gradients, not 1" % steps)
        check(fake.bad_token == 0, "%d calls without the token" % fake.bad_token)
        by_sender = {h.sender_id: (h, g, n) for h, g, n in fake.pushes}
        if not check(sorted(by_sender) == ["cpp-0", "py-0"],
                     "pushes from %s" % sorted(by_sender)):
            return
        (ch, cg, cn), (ph, pg, pn) = by_sender["cpp-0"], by_sender["py-0"]
        for h in (ch, ph):
            check(h.version == 0 and h.sample_count == 64 and h.num_floats == cg.size and
                  not h.retry and h.sequence == 1 and 0 < h.sender_incarnation < 2**63,
                  "push header of %s: %s" % (h.sender_id, h))
        check(cn == pn == (cg.size * 4 + 63) // 64, "chunks: C++ %d, Python %d" % (cn, pn))
        check(abs(ch.loss_sum - ph.loss_sum) <= 1e-4 * abs(ch.loss_sum),
              "loss sums: C++ %.7g, Python %.7g" % (ch.loss_sum, ph.loss_sum))
        error = float(np.max(np.abs(cg - pg)))
        scale = float(np.max(np.abs(cg)))
        print("same batch, same weights: %d floats, max |C++ - Python| = %.3g (max |g| %.3g)"
              % (cg.size, error, scale), flush=True)
        check(error <= 1e-5 * max(scale, 1.0),
              "the C++ and Python gradients differ by %g:\n%s\n%s" % (error, cg, pg))
        buffers = len(cg) - 6  # running_mean, running_var of 3 features
        check(np.all(cg[buffers:] != fake.weights[buffers:]),
              "the pushed running statistics are HQ's, not the batch's")

        # Another model: refused by name, nothing pushed.
        fake.pushes.clear()
        other = hips.Worker(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 5)),
                            "127.0.0.1:%d" % fake.port, "py-other", token=token)
        try:
            other.run([(torch.from_numpy(x), torch.from_numpy(y))], F.cross_entropy,
                      max_steps=1)
            check(False, "a worker of another model was not refused")
        except hips.HipsError as e:
            check("tensor 0" in str(e) and "'1.weight'[3,4]" in str(e) and
                  "'1.weight'[5,4]" in str(e), "the refusal does not name the tensor: %s" % e)
        other.close()
        check(not fake.pushes, "a worker of another model pushed %d gradients" %
              len(fake.pushes))
    finally:
        fake.stop()


class Processes:
    def __init__(self, tmp):
        self.tmp, self.procs = tmp, []

    def start(self, name, argv, port=True):
        log = open(os.path.join(self.tmp, name + ".log"), "w")
        port_file = os.path.join(self.tmp, name + ".port")
        if port:
            argv = argv + ["--port_file=" + port_file]
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.procs.append(proc)
        if not port:
            return proc, None
        def listening():
            if proc.poll() is not None:
                raise RuntimeError("%s exited: %s" % (name, self.log(name)))
            return os.path.exists(port_file) and open(port_file).read().strip()
        port = waiting.wait_for(listening, 120)
        if not port:
            raise RuntimeError(name + " did not listen in 120 s")
        return proc, int(port)

    def log(self, name):
        with open(os.path.join(self.tmp, name + ".log")) as f:
            return f.read()[-3000:]

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None and p.pid > 0:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


class Cluster:
    """hips-hq and two aggregators of `workers_each` workers, on 127.0.0.1,
    training mlp.pt on the Fashion-MNIST npz files in `tmp` in sync."""

    def __init__(self, args, tmp, pb, name, versions, workers_each):
        self.args, self.pb, self.dir = args, pb, os.path.join(tmp, name)
        os.mkdir(self.dir)
        self.module = os.path.join(args.modules, "mlp.pt")
        self.train = os.path.join(tmp, "train.npz")
        self.token_file = os.path.join(self.dir, "cluster.token")
        self.token = write_token(self.token_file)
        admin_token_file = os.path.join(self.dir, "admin.token")
        write_token(admin_token_file)
        self.model = ["--model=torchscript", "--model_file=" + self.module, "--data=npz",
                      "--train_data=" + self.train, "--test_data=" + os.path.join(tmp, "test.npz")]
        self.common = ["--token_file=" + self.token_file, "--metrics_port=-1"]
        self.procs = Processes(self.dir)
        try:
            self.hq, hq_port = self.procs.start(
                "hq", [os.path.join(args.bin, "hips-hq"), "--aggregators=2", "--mode=sync",
                       "--max_versions=%d" % versions, "--eval_every=0",
                       "--admin_token_file=" + admin_token_file] + self.model + self.common)
            self.hq_address = "127.0.0.1:%d" % hq_port
            self.workers_each = workers_each
            self.agg_procs, self.aggs = [], []
            for a in range(2):
                proc, port = self.procs.start("agg-%d" % a, self.aggregator_argv(a))
                self.agg_procs.append(proc)
                self.aggs.append("127.0.0.1:%d" % port)
        except Exception:
            self.procs.stop()
            raise

    def aggregator_argv(self, a):
        return [os.path.join(self.args.bin, "hips-aggregator"), "--id=agg-%d" % a,
                "--hq=" + self.hq_address, "--workers=%d" % self.workers_each] + self.common

    def restart_aggregator(self, a):
        """Starts aggregator `a` again, on the port it had (after it died)."""
        port = int(self.aggs[a].rsplit(":", 1)[1])
        self.agg_procs[a], _ = self.procs.start(
            "agg-%d-again" % a, self.aggregator_argv(a) + ["--port=%d" % port])

    def live_at(self, a, worker):
        """Whether `worker` holds a lease at aggregator `a`."""
        return worker in self.status(self.aggs[a], "Aggregator",
                                     self.pb.AggregatorStatus).live_workers

    def python_worker(self, k, workers, aggregators):
        return self.procs.start("worker-%d" % k, [
            sys.executable, os.path.join(self.args.src, "examples", "python_worker.py"),
            "--aggregator=" + ",".join(aggregators), "--index=%d" % k,
            "--workers=%d" % workers, "--model_file=" + self.module,
            "--train_data=" + self.train, "--token_file=" + self.token_file], port=False)[0]

    def status(self, address, service, reply):
        with grpc.insecure_channel(address) as channel:
            call = channel.unary_unary("/hips.v1.%s/GetStatus" % service,
                                       request_serializer=lambda m: m.SerializeToString(),
                                       response_deserializer=reply.FromString)
            return call(self.pb.StatusRequest(), timeout=10,
                        metadata=(("authorization", "Bearer " + self.token),))

    def hq_status(self):
        return self.status(self.hq_address, "Hq", self.pb.StatusReply)

    def wait_until_done(self, workers, seconds=900):
        """HQ's status once training is done and evaluated (or a worker
        failed, or time ran out); each worker's exit checked."""
        reply = None

        def finished():
            nonlocal reply
            reply = self.hq_status()
            return ((reply.training_done and reply.final_eval.examples > 0) or
                    any(p.poll() not in (None, 0) for p in workers.values()))
        waiting.wait_for(finished, seconds, every=0.2)
        for name, p in workers.items():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
            check(p.returncode == 0, "%s exited with %s: %s" % (name, p.returncode,
                                                                self.procs.log(name)))
        check(reply is not None and reply.training_done, "training not done: %s" % reply)
        return reply


def mixed_cluster_checks(args, tmp, pb, versions):
    c = Cluster(args, tmp, pb, "mixed", versions, workers_each=2)
    procs, aggs = c.procs, c.aggs
    try:
        # Each aggregator: one C++ and one Python worker; shards 0-3 of 4.
        workers = {}
        for k in range(2):
            workers["worker-%d" % k], _ = procs.start("worker-%d" % k, [
                os.path.join(args.bin, "hips-worker"), "--aggregator=" + aggs[k],
                "--index=%d" % k, "--workers=4"] + c.model + c.common, port=False)
        for k in range(2, 4):
            workers["worker-%d" % k] = c.python_worker(k, 4, [aggs[k % 2]])

        # A wrong token is refused at once, and not retried.
        intruder = hips.Worker(torch.jit.load(c.module), aggs[0], "intruder", token="0" * 64)
        try:
            intruder.pull(timeout=10)
            check(False, "a worker with a wrong token pulled weights")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.UNAUTHENTICATED,
                  "a wrong token got %s" % e.code())
        intruder.close()

        reply = c.wait_until_done(workers)
        if not reply.training_done:
            return
        accuracy = reply.final_eval.accuracy
        print("mixed cluster: %d versions, final test accuracy %.4f, %d gradients applied"
              % (reply.version, accuracy, reply.gradients_applied), flush=True)
        check(reply.version == versions, "version %d, not %d" % (reply.version, versions))
        check(reply.gradients_applied == 4 * versions,
              "%d gradients applied, not 4 per round" % reply.gradients_applied)
        check(reply.samples_applied == 4 * 64 * versions, "samples %d" % reply.samples_applied)
        check(accuracy >= 0.85, "final accuracy %.4f < 0.85" % accuracy)
        for k in (2, 3):
            log = procs.log("worker-%d" % k)
            check("py-worker-%d: %d gradients pushed, 0 refused" % (k, versions) in log,
                  "worker-%d did not push one gradient per version: %s" % (k, log))
    finally:
        procs.stop()


def failover_checks(args, tmp, pb, versions=150, kill_at=30, lease=2.0):
    """Two Python workers, each told of both aggregators: aggregator 0 is
    killed (SIGKILL) and its worker moves to aggregator 1 within two leases;
    training then finishes, every later round holding both workers' gradients
    and none a worker's twice."""
    c = Cluster(args, tmp, pb, "failover", versions, workers_each=1)
    try:
        workers = {"worker-0": c.python_worker(0, 2, [c.aggs[0], c.aggs[1]]),
                   "worker-1": c.python_worker(1, 2, [c.aggs[1], c.aggs[0]])}
        waiting.wait_for(lambda: c.hq_status().version >= kill_at, 300)
        c.agg_procs[0].kill()
        killed = time.time()
        moved = None
        if waiting.wait_for(lambda: c.live_at(1, "py-worker-0"), 30):
            moved = time.time() - killed
        if not check(moved is not None, "py-worker-0 not at aggregator 1 30 s after the kill"):
            return
        print("failover: aggregator killed at version %d, its Python worker at the other "
              "after %.2f s" % (kill_at, moved), flush=True)
        check(moved <= 2 * lease, "the failover took %.2f s, more than two %g s leases"
              % (moved, lease))
        # Once HQ stopped waiting for the dead aggregator, every round has
        # both gradients.
        waiting.wait_for(lambda: list(c.hq_status().live_aggregators) == ["agg-1"],
                         max(0, killed + 60 - time.time()))
        before = c.hq_status()
        reply = c.wait_until_done(workers)
        print("failover run: %d versions, accuracy %.4f, %d gradients applied" %
              (reply.version, reply.final_eval.accuracy, reply.gradients_applied), flush=True)
        check(reply.version == versions, "version %d, not %d" % (reply.version, versions))
        check(list(reply.live_aggregators) == ["agg-1"],
              "live aggregators %s" % list(reply.live_aggregators))
        check(reply.max_round_contributors <= 2,
              "a round counted %d contributions of 2 workers" % reply.max_round_contributors)
        check(reply.gradients_applied - before.gradients_applied ==
              2 * (reply.version - before.version),
              "after the failover: %d gradients over %d versions" %
              (reply.gradients_applied - before.gradients_applied,
               reply.version - before.version))
    finally:
        c.procs.stop()


def move_back_cluster_checks(args, tmp, pb, kill_at=20, lease=2.0):
    """The move back with the real daemons: two Python workers, each told
    of both aggregators; aggregator 0 is killed (SIGKILL), its worker fails
    over to aggregator 1; aggregator 0 is started again on its port, and
    its worker moves back to it (probing it every two leases) and leaves
    aggregator 1; training goes on with both, every round holding both
    gradients. (No version budget to finish: whatever the machine's speed,
    training outlasts the checks; the cluster is stopped after them.)"""
    c = Cluster(args, tmp, pb, "move-back", 1 << 40, workers_each=1)
    try:
        for k in range(2):
            c.python_worker(k, 2, [c.aggs[k], c.aggs[1 - k]])
        waiting.wait_for(lambda: c.hq_status().version >= kill_at, 300)
        c.agg_procs[0].kill()
        if not check(waiting.wait_for(lambda: c.live_at(1, "py-worker-0"), 30),
                     "py-worker-0 not at aggregator 1 30 s after the kill"):
            return
        c.restart_aggregator(0)
        restarted = time.time()
        if not check(waiting.wait_for(lambda: c.live_at(0, "py-worker-0"), 30,
                                      ignore=grpc.RpcError),
                     "py-worker-0 not back at aggregator 0 30 s after its restart"):
            return
        back = time.time() - restarted
        print("moving back: aggregator 0 restarted, its Python worker back after %.2f s "
              "(lease %g s)" % (back, lease), flush=True)
        # A probe every two leases, up to a second to reconnect, then a step.
        check(back <= 3 * lease + 2, "moving back took %.2f s" % back)
        check(waiting.wait_for(lambda: not c.live_at(1, "py-worker-0"), 2 * lease),
              "py-worker-0 still at aggregator 1 after moving back")
        # Once HQ hears from both aggregators where each worker is, every
        # round holds both gradients.
        def reported():
            return {a.id: sorted(a.live_workers) for a in c.hq_status().aggregators}
        settled = {"agg-0": ["py-worker-0"], "agg-1": ["py-worker-1"]}
        check(waiting.wait_for(lambda: reported() == settled, 2 * lease),
              "the aggregators report to HQ: %s" % reported())
        start = c.hq_status()
        waiting.wait_for(lambda: c.hq_status().version >= start.version + 20, 60)
        end = c.hq_status()
        check(end.version >= start.version + 20, "training stalled after moving back at "
              "version %d" % end.version)
        check(end.max_round_contributors <= 2,
              "a round counted %d contributions of 2 workers" % end.max_round_contributors)
        check(end.gradients_applied - start.gradients_applied ==
              2 * (end.version - start.version),
              "after moving back: %d gradients over %d versions (dropped at HQ: %s)" %
              (end.gradients_applied - start.gradients_applied, end.version - start.version,
               dict(end.gradients_dropped)))
    finally:
        c.procs.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", required=True)
    parser.add_argument("--modules", required=True)
    parser.add_argument("--src", required=True)
    parser.add_argument("--versions", type=int, default=600)
    args = parser.parse_args()
    sys.path.insert(0, os.path.join(args.src, "worker", "python"))
    global hips
    import hips  # noqa: E402
    from hips import hips_pb2 as pb
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="hips-python-worker-test-") as tmp:
        library_checks(args, tmp)
        argument_checks()
        token_file_checks(tmp)
        route_checks()
        same_gradient_checks(args, tmp, pb)
        retry_checks(pb, tmp)
        move_back_checks(pb, tmp)
        if not failures:
            subprocess.run([sys.executable, os.path.join(args.src, "examples",
                                                         "fashion_mnist_npz.py"), tmp],
                           check=True, capture_output=True, timeout=300)
            mixed_cluster_checks(args, tmp, pb, args.versions)
            failover_checks(args, tmp, pb)
            move_back_cluster_checks(args, tmp, pb)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
