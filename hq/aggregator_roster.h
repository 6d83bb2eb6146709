#ifndef HIPS_HQ_AGGREGATOR_ROSTER_H_
#define HIPS_HQ_AGGREGATOR_ROSTER_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/core/membership.h"
#include "services/types/payloads.h"
#include "services/types/tier_status.h"

namespace hips {

// HQ's aggregators: their leases (Membership) and what each reported with
// its newest heartbeat (its live workers, whether it still forms, where it
// serves), kept while its lease holds. A round waits for every live
// aggregator that has workers, or has not said yet. Not thread-safe: the
// owner serializes access.
class AggregatorRoster {
 public:
  AggregatorRoster(absl::Duration lease, int expected, int max_aggregators);

  Membership& members() { return members_; }
  const Membership& members() const { return members_; }

  // An aggregator's heartbeat at `now`: its lease and its report (see
  // Membership::Heartbeat).
  absl::StatusOr<Membership::Change> Heartbeat(const HeartbeatRequestData& heartbeat,
                                               absl::Time now);
  // Drops the aggregators whose lease ran out by `now` (and their reports).
  std::vector<std::string> Expire(absl::Time now);
  // Whether a round waits for live `aggregator`: it has workers, still
  // forms, or has not reported yet.
  bool HasWorkers(const std::string& aggregator) const;
  // Each live aggregator's live workers, as it reported them (nullopt: not
  // yet, or it still forms and reported none).
  std::map<std::string, std::optional<std::vector<std::string>>> LiveWorkers() const;
  // The live aggregators as the status shows them (in id order), the
  // workers they report, and whether HQ still forms.
  void Describe(ParameterServerStatus* status) const;

 private:
  struct Report {
    std::vector<std::string> live_workers;
    bool forming = false;
    std::string address;
  };
  Membership members_;
  std::map<std::string, Report> reports_;
};

}  // namespace hips

#endif  // HIPS_HQ_AGGREGATOR_ROSTER_H_
