#include "services/core/membership.h"

#include <algorithm>

#include "glog/logging.h"

namespace hips {

Membership::Membership(absl::Duration lease, int expected, int max_members)
    : lease_(lease), expected_(expected), max_members_(max_members), forming_(expected > 0) {}

bool Membership::HasRoom(const std::string& id) const {
  return max_members_ <= 0 || live_.contains(id) || static_cast<int>(live_.size()) < max_members_;
}

bool Membership::Touch(const std::string& id, absl::Time now, int64_t incarnation) {
  auto [it, joined] = live_.try_emplace(id);
  Lease& lease = it->second;
  const bool restarted =
      !joined && incarnation != 0 && lease.incarnation != 0 && incarnation != lease.incarnation;
  lease.expires = std::max(lease.expires, now + lease_);
  lease.last_seen = std::max(lease.last_seen, now);
  if (incarnation != 0) lease.incarnation = incarnation;
  if (joined) {
    ever_joined_.insert(id);
    if (forming_ && static_cast<int>(ever_joined_.size()) >= expected_) forming_ = false;
  }
  return joined || restarted;
}

void Membership::Leave(const std::string& id) { live_.erase(id); }

std::vector<std::string> Membership::Expire(absl::Time now) {
  std::vector<std::string> expired;
  for (const auto& [id, lease] : live_) {
    if (lease.expires <= now) expired.push_back(id);
  }
  std::sort(expired.begin(), expired.end());
  for (const std::string& id : expired) {
    live_.erase(id);
    LOG(WARNING) << id << "'s lease expired; rounds go on without it";
  }
  return expired;
}

absl::Time Membership::NextExpiry() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, lease] : live_) next = std::min(next, lease.expires);
  return next;
}

std::vector<std::string> Membership::Live() const {
  std::vector<std::string> ids;
  ids.reserve(live_.size());
  for (const auto& [id, lease] : live_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::Time Membership::LastSeen(const std::string& id) const {
  auto it = live_.find(id);
  return it == live_.end() ? absl::InfinitePast() : it->second.last_seen;
}

bool Membership::AllLiveIn(const absl::flat_hash_set<std::string>& done) const {
  for (const auto& [id, lease] : live_) {
    if (!done.contains(id)) return false;
  }
  return true;
}

}  // namespace hips
