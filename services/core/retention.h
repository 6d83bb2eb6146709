#ifndef HIPS_SERVICES_CORE_RETENTION_H_
#define HIPS_SERVICES_CORE_RETENTION_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"

namespace hips {

// How long a tier keeps what it knows of a member that left (its newest
// push sequence, its data position): `keep` after it was last heard from
// (docs/faults.md, "Bounded state"). A run whose homes come and go for ever
// keeps tables the size of the live membership, not of everyone it saw.
//
// Forgetting must not let a repeat in: a forgotten member's late retry would
// look new. So what a tier forgets it replaces with a horizon, the tier's
// newest version when it forgot: every push of the forgotten members that
// was taken was computed on an older version (taking a push makes a newer
// one). A push computed on a version below the horizon, from a member the
// tier holds nothing of, may repeat one it forgot, and is refused as stale
// (its sender computes again on newer weights). Not thread-safe.
class Retention {
 public:
  explicit Retention(absl::Duration keep) : keep_(keep) {}

  absl::Duration keep() const { return keep_; }
  // `member` was heard from (a push, a heartbeat, a report) at `now`.
  void Touch(const std::string& member, absl::Time now);
  // The members not `live` and not heard from for `keep`: forgotten
  // (returned, for the tier to erase), and the horizon rises to `version`
  // if any was. At most once per keep/4 (sooner calls return nothing), so
  // a tier may call it on every heartbeat.
  std::vector<std::string> Sweep(absl::Time now, int64_t version,
                                 const std::function<bool(const std::string&)>& live);
  // Whether a push of `version` from a member the tier holds nothing of may
  // repeat a forgotten one.
  bool MayRepeatForgotten(int64_t version) const { return version < horizon_; }
  int64_t horizon() const { return horizon_; }
  // A checkpoint's horizon (the members it held are touched at `now`).
  void Restore(int64_t horizon) { horizon_ = horizon; }
  // Members remembered (live or retained).
  size_t size() const { return last_seen_.size(); }

 private:
  const absl::Duration keep_;
  absl::flat_hash_map<std::string, absl::Time> last_seen_;
  int64_t horizon_ = 0;
  absl::Time next_sweep_ = absl::InfinitePast();
};

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_RETENTION_H_
