#include "hq/eval_loop.h"

#include <utility>

#include "glog/logging.h"

namespace hips {

EvalLoop::EvalLoop(EvaluateFn evaluate, int64_t every)
    : evaluate_(std::move(evaluate)), every_(every) {
  thread_ = std::thread([this] { Run(); });
}

EvalLoop::~EvalLoop() { Shutdown(); }

void EvalLoop::Offer(std::shared_ptr<const WeightsSnapshot> snapshot) {
  const bool wanted = snapshot->training_done || (every_ > 0 && snapshot->version % every_ == 0);
  if (!wanted) return;
  absl::MutexLock lock(&mu_);
  // Offers can arrive out of order (publishing threads race): never replace
  // a newer pending snapshot or go back behind the last evaluated one.
  if (pending_ != nullptr && pending_->version >= snapshot->version) return;
  if (latest_.has_value() && latest_->version >= snapshot->version) return;
  pending_ = std::move(snapshot);
}

void EvalLoop::Run() {
  while (true) {
    std::shared_ptr<const WeightsSnapshot> snapshot;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shutdown_ || pending_ != nullptr;
      };
      mu_.Await(absl::Condition(&ready));
      if (shutdown_) return;
      snapshot = std::move(pending_);
      pending_ = nullptr;
    }
    absl::StatusOr<EvalMetrics> metrics = evaluate_(snapshot->weights);
    if (!metrics.ok()) {
      LOG(ERROR) << "evaluating version " << snapshot->version << ": " << metrics.status();
      if (snapshot->training_done) {
        absl::MutexLock lock(&mu_);
        final_error_ = metrics.status();
      }
      continue;
    }
    LOG(INFO) << "eval version=" << snapshot->version << " " << DescribeMetrics(*metrics)
              << (snapshot->training_done ? " (final)" : "");
    absl::MutexLock lock(&mu_);
    latest_ = EvalResult{snapshot->version, *metrics};
    if (snapshot->training_done) final_ = latest_;
  }
}

std::optional<EvalResult> EvalLoop::latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

std::optional<EvalResult> EvalLoop::final_result() const {
  absl::MutexLock lock(&mu_);
  return final_;
}

absl::Status EvalLoop::final_error() const {
  absl::MutexLock lock(&mu_);
  return final_error_;
}

void EvalLoop::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    {
      absl::MutexLock lock(&mu_);
      shutdown_ = true;
    }
    thread_.join();
  });
}

}  // namespace hips
