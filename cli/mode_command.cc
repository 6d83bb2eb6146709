// hips mode MODE --hq=HOST:PORT: switches a running cluster's mode.

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "cli/cli_flags.h"
#include "cli/cluster_status.h"
#include "cli/commands.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/net/address.h"
#include "services/net/grpc_util.h"
#include "services/net/health.h"
#include "services/net/proto_convert.h"
#include "services/runtime/aggregator_flags.h"
#include "services/runtime/hq_flags.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/security_flags.h"

namespace hips {

int RunModeCommand(const std::string& name) {
  absl::StatusOr<ModeConfig> mode = ModeConfigFromFlags(name);
  if (!mode.ok()) ExitWithUsageError(std::string(mode.status().message()));
  const std::string hq = absl::GetFlag(FLAGS_hq);
  if (hq.empty()) ExitWithUsageError("hips mode needs --hq=HOST:PORT");
  const ClientCredentials credentials = OperatorCredentialsOrExit(/*admin=*/true, hq);
  std::unique_ptr<v1::Hq::Stub> stub = v1::Hq::NewStub(CreateHipsChannel(hq, credentials));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  Authenticate(&ctx, credentials.token);
  v1::SetModeRequest req;
  ModeToProto(*mode, req.mutable_mode());
  v1::SetModeReply reply;
  const grpc::Status status = stub->SetMode(&ctx, req, &reply);
  if (!status.ok()) {
    std::fprintf(stderr, "hips mode: %s\n", FromGrpcStatus(status).ToString().c_str());
    return 1;
  }
  absl::StatusOr<ModeConfig> previous = ModeFromProto(reply.previous());
  std::printf("mode %s from version %lld (was %s)\n", DescribeMode(*mode).c_str(),
              static_cast<long long>(reply.effective_version()),
              previous.ok() ? DescribeMode(*previous).c_str() : "unknown");
  return 0;
}

}  // namespace hips
