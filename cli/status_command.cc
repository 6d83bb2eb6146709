// hips status --hq=HOST:PORT [--json]: the live tree.

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

int RunStatusCommand() {
  const std::string hq = absl::GetFlag(FLAGS_hq);
  if (hq.empty()) ExitWithUsageError("hips status needs --hq=HOST:PORT");
  ClusterStatusOptions options;
  options.hq = hq;
  options.credentials = OperatorCredentialsOrExit(/*admin=*/false, hq);
  options.list_homes = absl::GetFlag(FLAGS_homes) != 0;
  absl::StatusOr<std::string> out =
      absl::GetFlag(FLAGS_json) ? ClusterStatusJson(options) : ClusterStatusTable(options);
  if (!out.ok()) {
    std::fprintf(stderr, "hips status: %s\n", out.status().ToString().c_str());
    return 1;
  }
  std::fputs(out->c_str(), stdout);
  return 0;
}

}  // namespace hips
