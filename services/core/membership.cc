#include "services/core/membership.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace hips {

Membership::Membership(absl::Duration lease, int expected, int max_members, MembershipNames names)
    : lease_(lease),
      names_(std::move(names)),
      expected_(expected),
      max_members_(max_members),
      forming_(expected > 0) {}

absl::Status Membership::Full(const std::string& id) const {
  return absl::ResourceExhaustedError(absl::StrCat(
      names_.tier, " is full: ", live_count(), " live ", names_.members, " of at most ",
      max_members_, " (", names_.limit_flag, "); ", id, " was not let in"));
}

absl::StatusOr<Membership::Change> Membership::Heartbeat(const std::string& id, absl::Time now,
                                                         int64_t incarnation, bool leaving) {
  if (leaving) {
    if (!IsLive(id)) return Change::kNone;
    LOG(INFO) << id << " left";
    Leave(id);
    return Change::kLeft;
  }
  if (!HasRoom(id)) {
    LOG_EVERY_N(WARNING, 100) << Full(id) << " (every 100th is logged)";
    return Full(id);
  }
  if (!Touch(id, now, incarnation)) return Change::kNone;
  LOG(INFO) << id << " joined (incarnation " << incarnation << ")";
  return Change::kJoined;
}

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

MemberInfo* Membership::Info(const std::string& id) {
  auto it = live_.find(id);
  return it == live_.end() ? nullptr : &it->second.info;
}

std::vector<MemberInfo> Membership::Describe() const {
  std::vector<MemberInfo> infos;
  for (const std::string& id : Live()) {
    const Lease& lease = live_.at(id);
    MemberInfo& info = infos.emplace_back(lease.info);
    info.id = id;
    info.last_seen = lease.last_seen;
  }
  return infos;
}

absl::Time Membership::LastSeen(const std::string& id) const {
  auto it = live_.find(id);
  return it == live_.end() ? absl::InfinitePast() : it->second.last_seen;
}

bool Membership::AllLiveIn(const absl::flat_hash_set<std::string>& done,
                           const std::function<bool(const std::string&)>& counts) const {
  for (const auto& [id, lease] : live_) {
    if (!done.contains(id) && (counts == nullptr || counts(id))) return false;
  }
  return true;
}

}  // namespace hips
