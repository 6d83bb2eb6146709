#!/usr/bin/python3
"""The Python worker library (worker/python/hips, docs/python.md).

    python_worker_test.py --bin BUILD/bin --modules BUILD/testdata/modules --src SOURCE_DIR

1. hips_pb2.py is what protoc makes of proto/hips/v1/hips.proto today.
2. Bad arguments to hips.Worker raise ValueError; save_module writes a file
   torch.jit.load reads back with the same layout.
3. Against a fake aggregator (a Python gRPC server that serves one version
   and records pushes): a C++ hips-worker and hips.Worker, on the same
   weights and the same batch (the whole 64-example data set), push the same
   gradient and the same BatchNorm running statistics to float tolerance; a
   worker of another model is refused naming the first tensor and pushes
   nothing.
4. A mixed cluster (hips-hq, 2 aggregators, 2 C++ and 2 Python workers
   running examples/python_worker.py) trains Fashion-MNIST in sync: every
   round holds all 4 gradients and HQ's final test accuracy is >= 0.85; a
   worker with a wrong token is refused at once.
Every wait is bounded; only processes started here are signalled, by pid.
"""
import argparse
import concurrent.futures
import os
import secrets
import signal
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
    for kwargs, what in (({"worker_id": ""}, "an empty worker id"),
                         ({"worker_id": "w", "chunk_bytes": 6}, "chunk_bytes 6"),
                         ({"worker_id": "w", "chunk_bytes": 0}, "chunk_bytes 0")):
        try:
            hips.Worker(model, "127.0.0.1:1", **kwargs)
            check(False, "hips.Worker took " + what)
        except ValueError:
            pass
    names = [(n, b) for n, _, b in hips.layout_of(model)]
    check(names == [("1.weight", False), ("1.bias", False), ("2.weight", False),
                    ("2.bias", False), ("2.running_mean", True), ("2.running_var", True)],
          "layout_of(batchnorm.pt) is %s" % names)
    saved = os.path.join(tmp, "saved.pt")
    hips.save_module(torch.nn.Sequential(torch.nn.Linear(3, 2)), saved)
    check([n for n, _, _ in hips.layout_of(torch.jit.load(saved))] == ["0.weight", "0.bias"],
          "save_module did not write a module torch.jit.load reads with its layout")


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
                  not h.retry and h.sequence > 1_600_000_000_000_000,
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
            self.agg_procs, self.aggs = [], []
            for a in range(2):
                proc, port = self.procs.start("agg-%d" % a, [
                    os.path.join(args.bin, "hips-aggregator"), "--id=agg-%d" % a,
                    "--hq=" + self.hq_address, "--workers=%d" % workers_each] + self.common)
                self.agg_procs.append(proc)
                self.aggs.append("127.0.0.1:%d" % port)
        except Exception:
            self.procs.stop()
            raise

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


def failover_checks(args, tmp, pb, versions=150, kill_at=30):
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
        if waiting.wait_for(lambda: "py-worker-0" in c.status(c.aggs[1], "Aggregator",
                                                              pb.AggregatorStatus).live_workers,
                            30):
            moved = time.time() - killed
        if not check(moved is not None, "py-worker-0 not at aggregator 1 30 s after the kill"):
            return
        print("failover: aggregator killed at version %d, its Python worker at the other "
              "after %.2f s" % (kill_at, moved), flush=True)
        check(moved <= 2 * 2.0, "the failover took %.2f s, more than two 2 s leases" % moved)
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
        same_gradient_checks(args, tmp, pb)
        if not failures:
            subprocess.run([sys.executable, os.path.join(args.src, "examples",
                                                         "fashion_mnist_npz.py"), tmp],
                           check=True, capture_output=True, timeout=300)
            mixed_cluster_checks(args, tmp, pb, args.versions)
            failover_checks(args, tmp, pb)
    print("%d failures" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
