#include "services/core/retention.h"

#include <algorithm>

namespace hips {

void Retention::Touch(const std::string& member, absl::Time now) {
  absl::Time& seen = last_seen_[member];
  seen = std::max(seen, now);
}

std::vector<std::string> Retention::Sweep(absl::Time now, int64_t version,
                                          const std::function<bool(const std::string&)>& live) {
  std::vector<std::string> forgotten;
  if (now < next_sweep_) return forgotten;
  next_sweep_ = now + keep_ / 4;
  for (auto it = last_seen_.begin(); it != last_seen_.end();) {
    if (now - it->second >= keep_ && !live(it->first)) {
      forgotten.push_back(it->first);
      last_seen_.erase(it++);
    } else {
      ++it;
    }
  }
  if (!forgotten.empty()) horizon_ = std::max(horizon_, version);
  return forgotten;
}

}  // namespace hips
