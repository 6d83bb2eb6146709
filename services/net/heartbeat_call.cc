#include "services/net/heartbeat_call.h"

#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"
#include "services/net/security.h"

namespace hips {

template <typename Stub>
absl::StatusOr<HeartbeatAnswer> CallHeartbeat(Stub* stub, CallRegistry* calls,
                                              const std::string& token,
                                              const HeartbeatRequestData& heartbeat,
                                              absl::Time deadline) {
  grpc::ClientContext ctx;
  CallRegistry::Guard guard(calls, &ctx);
  ctx.set_deadline(absl::ToChronoTime(deadline));
  Authenticate(&ctx, token);
  v1::HeartbeatRequest req;
  HeartbeatToProto(heartbeat, &req);
  v1::HeartbeatReply reply;
  const grpc::Status status = stub->Heartbeat(&ctx, req, &reply);
  if (!status.ok()) return FromGrpcStatus(status);
  return AnswerFromProto(reply);
}

template absl::StatusOr<HeartbeatAnswer> CallHeartbeat(v1::Hq::Stub*, CallRegistry*,
                                                       const std::string&,
                                                       const HeartbeatRequestData&, absl::Time);
template absl::StatusOr<HeartbeatAnswer> CallHeartbeat(v1::Aggregator::Stub*, CallRegistry*,
                                                       const std::string&,
                                                       const HeartbeatRequestData&, absl::Time);

}  // namespace hips
