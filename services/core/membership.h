#ifndef HIPS_SERVICES_CORE_MEMBERSHIP_H_
#define HIPS_SERVICES_CORE_MEMBERSHIP_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/types/payloads.h"

namespace hips {

// How a Membership's refusals and logs name its tier and members.
struct MembershipNames {
  std::string tier = "this tier";    // "aggregator agg-0", "HQ"
  std::string members = "members";   // "workers", "aggregators"
  std::string limit_flag = "limit";  // "--max_workers"
};

// The members of one tier (an aggregator's workers, HQ's aggregators) and
// their leases. A member joins with its first heartbeat (or push), renews its
// lease with every later one, and is live until the lease runs out or it
// leaves. A restarted member rejoins under the same id.
//
// Forming: a tier starts out waiting for the `expected` members its flags
// name, so the first rounds of a fresh cluster contain everyone (the sync
// equality tests rely on it). It is formed once that many distinct members
// have joined, or at once when it joins a cluster that is already training
// (EndForming). After that only live members count: a sync round needs a
// contribution from every live member, never from one whose lease expired
// (services/rounds/sync_policy.h).
//
// At most `max_members` (0: no limit) are live at once: whoever would join
// beyond them is refused (HasRoom) until a lease runs out or a member
// leaves, so a server's per-member state stays bounded (docs/security.md).
//
// Not thread-safe: the owner serializes access.
class Membership {
 public:
  Membership(absl::Duration lease, int expected, int max_members = 0,
             MembershipNames names = MembershipNames());

  // What a member's heartbeat changed.
  enum class Change { kNone, kJoined, kLeft };
  // A heartbeat from `id` at `now`: `leaving` ends its lease at once;
  // otherwise it renews or starts it. RESOURCE_EXHAUSTED (Full; every 100th
  // logged) for one that would join beyond max_members. Joins and
  // departures are logged.
  absl::StatusOr<Change> Heartbeat(const std::string& id, absl::Time now, int64_t incarnation,
                                   bool leaving);
  // The refusal of `id`, which would join beyond max_members.
  absl::Status Full(const std::string& id) const;

  // A heartbeat (or any traffic) from `id` at `now`. `incarnation` (0:
  // unknown) changing means the member restarted. True if it (re)joined.
  bool Touch(const std::string& id, absl::Time now, int64_t incarnation = 0);
  // Whether `id` is live, or may join without exceeding max_members.
  bool HasRoom(const std::string& id) const;
  int max_members() const { return max_members_; }
  // The member leaves at once (a worker moving to another aggregator).
  void Leave(const std::string& id);
  // Drops members whose lease ran out by `now` (and logs each); returns
  // their ids.
  std::vector<std::string> Expire(absl::Time now);
  // When the next lease runs out (InfiniteFuture with no live member).
  absl::Time NextExpiry() const;

  void EndForming() { forming_ = false; }
  bool forming() const { return forming_; }
  bool IsLive(const std::string& id) const { return live_.contains(id); }
  // Live members, sorted.
  std::vector<std::string> Live() const;
  // When a live member was last heard from (InfinitePast if it is not live).
  absl::Time LastSeen(const std::string& id) const;
  // What the tier keeps of a live member while its lease holds (null if it
  // is not live).
  MemberInfo* Info(const std::string& id);
  // The live members' info, in id order, with their ids and last_seen.
  std::vector<MemberInfo> Describe() const;
  int live_count() const { return static_cast<int>(live_.size()); }
  absl::Duration lease() const { return lease_; }

  // Whether every live member (that `counts`, if given) is in `done`.
  bool AllLiveIn(const absl::flat_hash_set<std::string>& done,
                 const std::function<bool(const std::string&)>& counts = nullptr) const;

 private:
  struct Lease {
    absl::Time expires;
    absl::Time last_seen;
    int64_t incarnation = 0;
    MemberInfo info;
  };
  const absl::Duration lease_;
  const MembershipNames names_;
  const int expected_;
  const int max_members_;
  bool forming_;
  absl::flat_hash_map<std::string, Lease> live_;
  absl::flat_hash_set<std::string> ever_joined_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_MEMBERSHIP_H_
