#ifndef HIPS_SERVICES_CORE_QUARANTINE_H_
#define HIPS_SERVICES_CORE_QUARANTINE_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"

namespace hips {

// Members that misbehave again and again are put out for a while
// (--quarantine_ms; docs/security.md, "Quarantine"). A strike is a
// contribution refused for its content (malformed, more samples than a push
// may claim) or left out of a robust combination as an outlier; kStrikes in
// a row, with no contribution taken in between, put the member out for the
// quarantine's length: its pushes and heartbeats are refused until then,
// and it is out of the membership (no round waits for it). Refusals that
// say nothing about the member's intent (stale versions, non-finite values
// of a diverging run, a round that closed) are not strikes. Bounded: at
// most kMaxTracked members have strikes at once (others are not counted
// until some are cleared). Not thread-safe: the owner serializes access.
class Quarantine {
 public:
  static constexpr int kStrikes = 5;
  static constexpr size_t kMaxTracked = 1 << 16;
  // The longest a quarantine may be (--quarantine_ms: a day).
  static constexpr int64_t kMaxMilliseconds = 24 * 3600 * 1000;

  // A zero `length` turns it off: nobody is ever put out.
  explicit Quarantine(absl::Duration length) : length_(length) {}

  // A strike against `id` at `now`; true when it puts `id` out (from now
  // until now + length).
  bool Strike(const std::string& id, absl::Time now);
  // A contribution of `id` was taken: its strikes start again.
  void Clear(const std::string& id) { strikes_.erase(id); }
  // OK, or FAILED_PRECONDITION saying until when `id` is out.
  absl::Status Check(const std::string& id, absl::Time now);

  bool enabled() const { return length_ > absl::ZeroDuration(); }
  absl::Duration length() const { return length_; }
  // Times a member was put out.
  int64_t quarantined() const { return quarantined_; }

 private:
  const absl::Duration length_;
  absl::flat_hash_map<std::string, int> strikes_;
  absl::flat_hash_map<std::string, absl::Time> out_until_;
  int64_t quarantined_ = 0;
};

// INVALID_ARGUMENT naming --quarantine_ms unless in [0, a day].
absl::Status ValidateQuarantineMs(int64_t ms);

}  // namespace hips

#endif  // HIPS_SERVICES_CORE_QUARANTINE_H_
