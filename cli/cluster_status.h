#ifndef HIPS_CLI_CLUSTER_STATUS_H_
#define HIPS_CLI_CLUSTER_STATUS_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/net/security.h"
#include "services/types/tier_status.h"

namespace hips {

// `hips status`: the live tree of a running cluster. HQ's GetStatus names the
// aggregators holding a lease and where they serve; each aggregator's
// GetStatus names its workers. Rates (samples/s) come from two snapshots
// `interval` apart. Staleness is how many versions HQ is ahead of a member's
// weights (aggregators) or newest gradient (workers).
struct ClusterStatusOptions {
  std::string hq;                 // host:port
  ClientCredentials credentials;  // docs/security.md
  absl::Duration interval = absl::Seconds(1);
  absl::Duration rpc_timeout = absl::Seconds(5);
  // The table lists every home (hips status --homes); otherwise an
  // aggregator of more than kListedHomes gets a row of counts instead.
  bool list_homes = false;
  static constexpr size_t kListedHomes = 16;
};

// The tree as a terminal table, or as JSON:
// The table summarizes an aggregator of more than kListedHomes homes in one
// row ("250 homes": newest version, largest staleness, summed samples/s,
// longest silence) and a line of counts by state (HomeCounts) below.
// {"hq": {"address", "version", "mode", "max_staleness", "samples_per_s",
//  "training_done", "rollbacks", "diverged", "incarnation",
//  "live_aggregators", "live_workers", "round"},
//  "aggregators": [{"id", "address", "version", "staleness", "samples_per_s",
//   "last_seen_s", "forming", "reachable", "round", "home_counts" (HomeCounts
//   as {"live", "waited_for", "recent", "older", "never"}), "workers": [{"id",
//   "version", "staleness", "samples_per_s", "last_seen_s", "gradients"}]}]}
// where "round" is {"version", "waiting_for": [ids], "waited_s"} (null
// before a round opened).
// UNAVAILABLE (or HQ's error) when HQ does not answer; an aggregator that
// does not answer is listed with "reachable": false.
absl::StatusOr<std::string> ClusterStatusTable(const ClusterStatusOptions& options);
absl::StatusOr<std::string> ClusterStatusJson(const ClusterStatusOptions& options);

// An aggregator's live homes by state: waited for by its open round, else
// by their newest gradient: within kRecentVersions of HQ's version, older,
// or none yet (drawn for no round so far, in fedavg).
struct HomeCounts {
  static constexpr int64_t kRecentVersions = 10;
  int64_t live = 0;
  int64_t waited_for = 0;
  int64_t recent = 0;
  int64_t older = 0;
  int64_t never = 0;
};
HomeCounts CountHomes(const std::vector<MemberInfo>& homes, const RoundWait& round,
                      int64_t hq_version);
// "agg-0: 250 live homes: 10 waited for, 90 recent (within 10 versions), 148
// older, 2 none yet".
std::string DescribeHomeCounts(const std::string& who, const HomeCounts& counts);

// "<who>'s round of version V has waited 4.2s for a, b" (empty when it waits
// for nobody): hips status's and hips local's line about a waiting round.
std::string DescribeRoundWait(const std::string& who, const RoundWait& round);

}  // namespace hips

#endif  // HIPS_CLI_CLUSTER_STATUS_H_
