#include "cli/status_client.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"

namespace hips {

struct StatusClient::Channels {
  std::unique_ptr<v1::Hq::Stub> hq;
  std::map<std::string, std::unique_ptr<v1::Aggregator::Stub>> aggregators;
};

StatusClient::StatusClient(std::string hq_address, ClientCredentials credentials)
    : hq_address_(std::move(hq_address)),
      credentials_(std::move(credentials)),
      channels_(std::make_unique<Channels>()) {
  channels_->hq = v1::Hq::NewStub(CreateHipsChannel(hq_address_, credentials_));
}

StatusClient::~StatusClient() = default;

absl::StatusOr<HqStatus> StatusClient::Hq(absl::Duration timeout, bool wait_for_ready) {
  grpc::ClientContext ctx;
  ctx.set_wait_for_ready(wait_for_ready);
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  Authenticate(&ctx, credentials_.token);
  v1::StatusReply reply;
  const grpc::Status status = channels_->hq->GetStatus(&ctx, v1::StatusRequest(), &reply);
  absl::StatusOr<HqStatus> out =
      status.ok() ? HqStatusFromProto(reply, absl::Now()) : FromGrpcStatus(status);
  if (!out.ok()) {
    return absl::Status(out.status().code(),
                        absl::StrCat("HQ at ", hq_address_, ": ", out.status().message()));
  }
  return out;
}

absl::StatusOr<AggregatorStatus> StatusClient::Aggregator(const std::string& address,
                                                          absl::Duration timeout) {
  auto [it, added] = channels_->aggregators.try_emplace(address);
  if (added) it->second = v1::Aggregator::NewStub(CreateHipsChannel(address, credentials_));
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  Authenticate(&ctx, credentials_.token);
  v1::AggregatorStatus reply;
  const grpc::Status status = it->second->GetStatus(&ctx, v1::StatusRequest(), &reply);
  if (!status.ok()) {
    const absl::Status why = FromGrpcStatus(status);
    return absl::Status(why.code(), absl::StrCat("aggregator at ", address, ": ", why.message()));
  }
  return AggregatorStatusFromProto(reply, absl::Now());
}

}  // namespace hips
