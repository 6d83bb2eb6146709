#include "services/core/quarantine.h"

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace hips {

bool Quarantine::Strike(const std::string& id, absl::Time now) {
  if (!enabled()) return false;
  // (One already out is not put out again: what it sends meanwhile is
  // refused anyway, maybe for another reason first.)
  if (auto out = out_until_.find(id); out != out_until_.end() && now < out->second) return false;
  auto it = strikes_.find(id);
  if (it == strikes_.end()) {
    if (strikes_.size() >= kMaxTracked) return false;
    it = strikes_.emplace(id, 0).first;
  }
  if (++it->second < kStrikes) return false;
  strikes_.erase(it);
  // (Expired entries go as their members come back: Check.)
  if (out_until_.size() >= kMaxTracked) return false;
  out_until_[id] = now + length_;
  ++quarantined_;
  LOG(WARNING) << id << " is put out for " << absl::FormatDuration(length_) << ": " << kStrikes
               << " of its contributions in a row were refused or left out (--quarantine_ms)";
  return true;
}

absl::Status Quarantine::Check(const std::string& id, absl::Time now) {
  auto it = out_until_.find(id);
  if (it == out_until_.end()) return absl::OkStatus();
  if (now >= it->second) {
    out_until_.erase(it);
    LOG(INFO) << id << "'s quarantine is over";
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      id, " is put out for another ", absl::FormatDuration(it->second - now), ": ", kStrikes,
      " of its contributions in a row were refused or left out (--quarantine_ms)"));
}

absl::Status ValidateQuarantineMs(int64_t ms) {
  if (ms >= 0 && ms <= Quarantine::kMaxMilliseconds) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--quarantine_ms must be in [0, ", Quarantine::kMaxMilliseconds, "], got ", ms));
}

}  // namespace hips
