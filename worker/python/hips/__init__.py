"""hips for PyTorch users: train a model as a worker of a hips cluster.

    import hips
    worker = hips.Worker(model, aggregator="127.0.0.1:7001", worker_id="py-0",
                         token_file="/tmp/cluster.token")
    worker.run(loader, torch.nn.functional.cross_entropy)

Needs only Debian's python3-torch, python3-grpcio and python3-protobuf
(docs/python.md). hips_pb2 is generated from proto/hips/v1/hips.proto
(scripts/gen_python_proto.sh; a test checks it is current).
"""
from .errors import HipsError, HipsRpcError
from .worker import Weights, Worker, layout_of, save_module

__all__ = ["HipsError", "HipsRpcError", "Weights", "Worker", "layout_of", "save_module"]
