"""hips.Worker: a PyTorch model as a hips worker (docs/python.md).

The same protocol as the C++ worker (docs/protocol.md): heartbeats hold a
lease at the aggregator, weights arrive by long poll, a gradient travels as
a client stream of chunks (raw little-endian float32, in layout order), and
a push whose outcome is unknown is retried, marked as a retry, on the same
or (failing over) the next aggregator.
"""
import random
import threading
import time

import grpc
import numpy as np
import torch

from . import hips_pb2 as pb

_RETRYABLE = {
    grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL,
    grpc.StatusCode.UNKNOWN,
}
_MODES = {pb.MODE_SYNC: "sync", pb.MODE_ASYNC: "async", pb.MODE_SSP: "ssp",
          pb.MODE_FEDAVG: "fedavg"}


class HipsError(Exception):
    """A refusal that retrying does not cure (another model, a bad token...)."""


class _Cancelled(grpc.RpcError):
    """A push this worker cancelled itself (failing over): retried."""

    def code(self):
        return grpc.StatusCode.CANCELLED

    def details(self):
        return "cancelled to fail over"


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


class Worker:
    """A worker of a hips cluster training `model` (a torch.nn.Module with
    the layout of HQ's --model_file).

    aggregator: "host:port" of its aggregator; failover: more addresses to
    move to when it stops answering. worker_id: unique in the cluster
    ([A-Za-z0-9._-]). token / token_file: the cluster token. tls_ca (and
    tls_cert, tls_key for mutual TLS): PEM files, as the daemons' flags.
    """

    def __init__(self, model, aggregator, worker_id, *, failover=(), token=None, token_file=None,
                 tls_ca=None, tls_cert=None, tls_key=None, chunk_bytes=256 << 10,
                 long_poll_s=10.0, max_backoff_s=2.0):
        if not worker_id:
            raise ValueError("a worker needs a worker_id")
        if chunk_bytes <= 0 or chunk_bytes % 4:
            raise ValueError("chunk_bytes must be a positive multiple of 4")
        if token_file is not None:
            with open(token_file) as f:
                token = f.read().strip()
        self.model = model
        self.worker_id = worker_id
        self._layout = layout_of(model)
        self._num_floats = sum(t.numel() for _, t, _ in self._layout)
        # Reused by every push and pull: no allocation (and no page faults)
        # of a model-sized buffer per step.
        self._flat = np.empty(self._num_floats, dtype="<f4")
        self._flat_bytes = memoryview(self._flat).cast("B")
        self._incoming = bytearray(self._num_floats * 4)
        self._chunk_bytes = chunk_bytes
        self._long_poll_s = long_poll_s
        self._max_backoff_s = max_backoff_s
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        credentials = None
        if tls_ca is not None:
            read = lambda p: open(p, "rb").read() if p else None
            credentials = grpc.ssl_channel_credentials(read(tls_ca), read(tls_key),
                                                       read(tls_cert))
        self._addresses = [aggregator, *failover]
        self._stubs = [self._stub(a, credentials) for a in self._addresses]
        self._active = 0
        self._incarnation = int(time.time() * 1e6)
        self._sequence = self._incarnation - 1
        self._lease_s = 2.0
        self._weights = None  # Weights of the newest pull
        self._newest_known = -1
        self._last_step = -1
        self._stop = threading.Event()
        self._heartbeats = None
        self._failover = threading.Event()
        self._in_flight = None  # the pull or push under way, cancelled on failover
        self.steps = 0
        self.refused = 0

    # --- the RPCs --------------------------------------------------------

    def _stub(self, address, credentials):
        options = [("grpc.max_receive_message_length", 64 << 20)]
        channel = (grpc.secure_channel(address, credentials, options) if credentials
                   else grpc.insecure_channel(address, options))
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
        stub = self._stubs[self._active if index is None else index]
        reply = stub["heartbeat"](
            pb.HeartbeatRequest(member_id=self.worker_id, incarnation=self._incarnation,
                                leaving=leaving),
            timeout=timeout or self._lease_s / 2, metadata=self._metadata)
        if reply.lease_ms > 0:
            self._lease_s = reply.lease_ms / 1000
        return reply

    def _heartbeat_loop(self):
        last_answer = time.monotonic()
        while not self._stop.wait(self._lease_s / 3):
            try:
                self._heartbeat()
                last_answer = time.monotonic()
            except grpc.RpcError:
                if (time.monotonic() - last_answer > self._lease_s and len(self._stubs) > 1
                        and not self._failover.is_set()):
                    # A hung aggregator would hold a long poll or a push
                    # until its deadline: give up on it now.
                    self._failover.set()
                    call = self._in_flight
                    if call is not None:
                        call.cancel()

    def _maybe_fail_over(self):
        if not self._failover.is_set():
            return
        self._failover.clear()
        self._active = (self._active + 1) % len(self._stubs)
        try:
            self._heartbeat()
        except grpc.RpcError:
            pass

    def pull(self, min_version=0, timeout=None, no_wait=False):
        """Waits (long poll, up to `timeout` seconds) for weights of at least
        `min_version` and loads them into the model (parameters and float
        buffers). Returns their Weights; raises grpc.RpcError with
        DEADLINE_EXCEEDED when none came in time, HipsError when the cluster
        trains another model."""
        request = pb.PullWeightsRequest(
            requester_id=self.worker_id, min_version=min_version, no_wait=no_wait,
            incarnation=self._weights.incarnation if self._weights else 0)
        stream = self._stubs[self._active]["pull"](
            request, timeout=timeout or self._long_poll_s, metadata=self._metadata)
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
        the PushAck; raises grpc.RpcError if the aggregator refused it."""
        if self._weights is None:
            raise HipsError("push before the first pull: no version to compute on")
        if not retry:
            self._sequence += 1
        self.gradient()
        data = self._flat_bytes
        header = pb.GradientHeader(
            sender_id=self.worker_id, version=self._weights.version, sample_count=num_samples,
            loss_sum=loss_sum, num_floats=self._num_floats, sequence=self._sequence, retry=retry,
            step=self._last_step + 1 if step is None else step)

        def chunks():
            step_bytes = self._chunk_bytes
            yield pb.GradientChunk(header=header, data=data[:step_bytes].tobytes())
            for at in range(step_bytes, len(data), step_bytes):
                yield pb.GradientChunk(data=data[at:at + step_bytes].tobytes())

        call = self._stubs[self._active]["push"].future(
            chunks(), timeout=max(30.0, 4 * self._lease_s), metadata=self._metadata)
        self._in_flight = call
        try:
            ack = call.result()
        except grpc.FutureCancelledError:
            raise _Cancelled() from None
        finally:
            self._in_flight = None
        self._newest_known = max(self._newest_known, ack.newest_version)
        return ack

    # --- the whole loop --------------------------------------------------

    def _backoff(self, attempt):
        return random.uniform(0, min(self._max_backoff_s, 0.05 * 2 ** attempt))

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
        """Trains until HQ says training is done (or `max_steps`): pulls
        weights as the mode asks, computes loss_fn(model(x), y) in train
        mode on the next (x, y) of `loader` (cycled), pushes the gradient,
        retrying and failing over as the C++ worker does. `loss_fn` returns
        the batch's MEAN loss. Returns the number of gradients pushed."""
        try:
            joined = self._heartbeat()
            if self.worker_id in joined.data_positions:
                # A restarted worker: its step numbers go on where HQ saw them.
                self._last_step = max(self._last_step, joined.data_positions[self.worker_id] - 1)
        except grpc.RpcError:
            pass
        self._heartbeats = threading.Thread(target=self._heartbeat_loop, daemon=True)
        self._heartbeats.start()
        batches = iter(loader)
        attempt = 0
        try:
            while max_steps is None or self.steps < max_steps:
                self._maybe_fail_over()
                try:
                    w = self._next_weights()
                except grpc.RpcError as e:
                    if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                        continue
                    if e.code() not in _RETRYABLE:
                        raise HipsError(f"pulling weights: {e.code().name}: {e.details()}")
                    time.sleep(self._backoff(attempt))
                    attempt += 1
                    continue
                attempt = 0
                if w.training_done:
                    break
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
                self._push_with_retry(len(x), float(loss) * len(x), step)
                self._last_step = step
                self.steps += 1
        finally:
            self._stop.set()
            self._heartbeats.join()
            try:
                self._heartbeat(leaving=True, timeout=0.5)
            except grpc.RpcError:
                pass
        return self.steps

    def _push_with_retry(self, num_samples, loss_sum, step):
        retry, attempt = False, 0
        while True:
            try:
                self.push(num_samples, loss_sum, step=step, retry=retry)
                return
            except grpc.RpcError as e:
                if e.code() not in _RETRYABLE:
                    self.refused += 1  # counted by the aggregator; move on
                    return
                # The outcome is unknown: every further attempt says so.
                retry = True
                time.sleep(self._backoff(attempt))
                attempt += 1
                self._maybe_fail_over()

    def close(self):
        self._stop.set()
        for stub in self._stubs:
            stub["channel"].close()
