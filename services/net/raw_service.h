#ifndef HIPS_SERVICES_NET_RAW_SERVICE_H_
#define HIPS_SERVICES_NET_RAW_SERVICE_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/method_handler.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/sync_stream.h>

#include <functional>

#include "hips/v1/hips.pb.h"

// hips's services register their methods by hand, the way gRPC's generated
// code does, so that the bulk methods read and write raw grpc::ByteBuffers
// (chunked_stream.h: no protobuf copies of tensors) while the small ones
// keep their protobuf types. On the wire nothing changes: clients built on
// the generated stubs call them as usual.

namespace hips {

// Full method names of hips.v1 (as in hips.proto).
namespace method {
inline constexpr char kAggregatorPushGradient[] = "/hips.v1.Aggregator/PushGradient";
inline constexpr char kAggregatorPullWeights[] = "/hips.v1.Aggregator/PullWeights";
inline constexpr char kAggregatorGetStatus[] = "/hips.v1.Aggregator/GetStatus";
inline constexpr char kAggregatorHeartbeat[] = "/hips.v1.Aggregator/Heartbeat";
inline constexpr char kHqPushAggregate[] = "/hips.v1.Hq/PushAggregate";
inline constexpr char kHqPullWeights[] = "/hips.v1.Hq/PullWeights";
inline constexpr char kHqGetStatus[] = "/hips.v1.Hq/GetStatus";
inline constexpr char kHqSetMode[] = "/hips.v1.Hq/SetMode";
inline constexpr char kHqHeartbeat[] = "/hips.v1.Hq/Heartbeat";
}  // namespace method

class RawService : public grpc::Service {
 protected:
  using PushReader = grpc::ServerReader<grpc::ByteBuffer>;
  using ChunkWriter = grpc::ServerWriter<grpc::ByteBuffer>;

  template <typename Request, typename Response>
  void AddUnary(const char* name,
                std::function<grpc::Status(grpc::ServerContext*, const Request*, Response*)> fn) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        name, grpc::internal::RpcMethod::NORMAL_RPC,
        new grpc::internal::RpcMethodHandler<RawService, Request, Response>(
            [fn](RawService*, grpc::ServerContext* ctx, const Request* req, Response* resp) {
              return fn(ctx, req, resp);
            },
            this)));
  }

  // A push: a client stream of chunk messages answered with a PushAck.
  void AddPush(const char* name,
               std::function<grpc::Status(grpc::ServerContext*, PushReader*, v1::PushAck*)> fn) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        name, grpc::internal::RpcMethod::CLIENT_STREAMING,
        new grpc::internal::ClientStreamingHandler<RawService, grpc::ByteBuffer, v1::PushAck>(
            [fn](RawService*, grpc::ServerContext* ctx, PushReader* reader, v1::PushAck* ack) {
              return fn(ctx, reader, ack);
            },
            this)));
  }

  // A pull: a request answered with a stream of chunk messages.
  template <typename Request>
  void AddPull(const char* name,
               std::function<grpc::Status(grpc::ServerContext*, const Request*, ChunkWriter*)> fn) {
    AddMethod(new grpc::internal::RpcServiceMethod(
        name, grpc::internal::RpcMethod::SERVER_STREAMING,
        new grpc::internal::ServerStreamingHandler<RawService, Request, grpc::ByteBuffer>(
            [fn](RawService*, grpc::ServerContext* ctx, const Request* req, ChunkWriter* w) {
              return fn(ctx, req, w);
            },
            this)));
  }
};

}  // namespace hips

#endif  // HIPS_SERVICES_NET_RAW_SERVICE_H_
