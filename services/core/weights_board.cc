#include "services/core/weights_board.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace hips {

bool WeightsBoard::Publish(std::shared_ptr<const WeightsSnapshot> snapshot) {
  absl::MutexLock lock(&mu_);
  if (latest_ != nullptr && snapshot->incarnation == latest_->incarnation &&
      snapshot->version <= latest_->version &&
      !(snapshot->version == latest_->version && snapshot->training_done &&
        !latest_->training_done)) {
    return false;
  }
  latest_ = std::move(snapshot);
  return true;
}

std::shared_ptr<const WeightsSnapshot> WeightsBoard::Latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> WeightsBoard::WaitFor(
    int64_t min_version, absl::Time deadline, int64_t incarnation) const {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return shutdown_ ||
           (latest_ != nullptr &&
            (latest_->version >= min_version || latest_->training_done ||
             (incarnation != 0 && latest_->incarnation != incarnation)));
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&ready), deadline)) {
    return absl::DeadlineExceededError(
        absl::StrCat("no weights of version >= ", min_version, " yet"));
  }
  if (shutdown_) return absl::UnavailableError("shutting down");
  return latest_;
}

void WeightsBoard::Shutdown() {
  absl::MutexLock lock(&mu_);
  shutdown_ = true;
}

}  // namespace hips
