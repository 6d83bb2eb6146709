#include "hq/aggregator_roster.h"

#include <set>
#include <utility>

namespace hips {

AggregatorRoster::AggregatorRoster(absl::Duration lease, int expected, int max_aggregators)
    : members_(lease, expected, max_aggregators > 0 ? max_aggregators : expected,
               MembershipNames{"HQ", "aggregators", "--max_aggregators"}) {}

absl::StatusOr<Membership::Change> AggregatorRoster::Heartbeat(const HeartbeatRequestData& hb,
                                                               absl::Time now) {
  absl::StatusOr<Membership::Change> change =
      members_.Heartbeat(hb.member, now, hb.incarnation, hb.leaving);
  if (!change.ok()) return change;
  if (hb.leaving) {
    reports_.erase(hb.member);
  } else {
    reports_[hb.member] = Report{hb.live_workers, hb.forming, hb.address};
  }
  return change;
}

std::vector<std::string> AggregatorRoster::Expire(absl::Time now) {
  std::vector<std::string> expired = members_.Expire(now);
  for (const std::string& aggregator : expired) reports_.erase(aggregator);
  return expired;
}

bool AggregatorRoster::HasWorkers(const std::string& aggregator) const {
  auto it = reports_.find(aggregator);
  return it == reports_.end() || it->second.forming || !it->second.live_workers.empty();
}

std::map<std::string, std::optional<std::vector<std::string>>> AggregatorRoster::LiveWorkers()
    const {
  std::map<std::string, std::optional<std::vector<std::string>>> live;
  for (const std::string& aggregator : members_.Live()) {
    std::optional<std::vector<std::string>>& workers = live[aggregator];
    auto it = reports_.find(aggregator);
    if (it != reports_.end() && !(it->second.forming && it->second.live_workers.empty())) {
      workers = it->second.live_workers;
    }
  }
  return live;
}

void AggregatorRoster::Describe(ParameterServerStatus* status) const {
  std::vector<std::string> aggregators = members_.Live();
  std::set<std::string> workers;
  status->aggregators.clear();
  for (const std::string& aggregator : aggregators) {
    MemberInfo& info = status->aggregators.emplace_back();
    info.id = aggregator;
    info.last_seen = members_.LastSeen(aggregator);
    if (auto it = reports_.find(aggregator); it != reports_.end()) {
      workers.insert(it->second.live_workers.begin(), it->second.live_workers.end());
      info.address = it->second.address;
      info.live_workers = it->second.live_workers;
      info.forming = it->second.forming;
    }
  }
  status->live_aggregators = std::move(aggregators);
  status->live_workers.assign(workers.begin(), workers.end());
  status->forming = members_.forming();
}

}  // namespace hips
