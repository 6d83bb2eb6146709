// hips health HOST:PORT: asks a daemon's grpc.health.v1 service.

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

int RunHealthCommand(const std::string& address) {
  const int64_t timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
  if (timeout_ms <= 0 || timeout_ms > 600'000) {
    ExitWithUsageError("--timeout_ms must be in [1, 600000]");
  }
  ClientSecurity security;
  security.tls = SecurityOptionsFromFlagsOrExit().tls;
  if (absl::Status s = CheckDialAddress("hips health", address); !s.ok()) {
    ExitWithUsageError(std::string(s.message()));
  }
  if (CheckingFlagsOnly()) ExitAfterFlagCheck(CheckClientTls(security.tls));
  absl::StatusOr<ClientCredentials> credentials = MakeClientCredentials(security);
  if (!credentials.ok()) ExitWithUsageError(std::string(credentials.status().message()));
  absl::StatusOr<Health> health = CheckHealth(address, absl::GetFlag(FLAGS_service), *credentials,
                                              absl::Milliseconds(timeout_ms));
  if (!health.ok()) {
    std::fprintf(stderr, "hips health: %s: %s\n", address.c_str(),
                 health.status().ToString().c_str());
    return 1;
  }
  std::printf("%s: %s\n", address.c_str(), HealthName(*health));
  return *health == Health::kServing || absl::GetFlag(FLAGS_live) ? 0 : 1;
}

}  // namespace hips
