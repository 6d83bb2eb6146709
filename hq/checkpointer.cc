#include "hq/checkpointer.h"

#include <utility>

#include "glog/logging.h"

namespace hips {

Checkpointer::Checkpointer(CheckpointStore store) : store_(std::move(store)) {
  thread_ = std::thread([this] { Loop(); });
}

Checkpointer::~Checkpointer() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
}

void Checkpointer::Offer(Checkpoint checkpoint) {
  absl::MutexLock lock(&mu_);
  if (waiting_.has_value()) ++stats_.replaced;
  waiting_ = std::move(checkpoint);
}

void Checkpointer::Flush() {
  absl::MutexLock lock(&mu_);
  auto idle = [this]()
                  ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !waiting_.has_value() && !writing_; };
  mu_.Await(absl::Condition(&idle));
}

Checkpointer::Stats Checkpointer::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void Checkpointer::Loop() {
  while (true) {
    Checkpoint next;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [this]()
                       ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return stop_ || waiting_.has_value(); };
      mu_.Await(absl::Condition(&ready));
      if (!waiting_.has_value()) return;  // stopping, nothing left to write
      next = std::move(*waiting_);
      waiting_.reset();
      writing_ = true;
    }
    const absl::Time start = absl::Now();
    absl::StatusOr<std::string> path = store_.Write(next);
    absl::MutexLock lock(&mu_);
    writing_ = false;
    if (path.ok()) {
      ++stats_.written;
      stats_.last_version = next.version;
      stats_.last_path = *path;
      VLOG(1) << "checkpoint of version " << next.version << " written to " << *path << " in "
              << absl::FormatDuration(absl::Now() - start);
    } else {
      ++stats_.failed;
      stats_.last_error = path.status();
      LOG(ERROR) << "checkpoint of version " << next.version << " failed: " << path.status();
    }
  }
}

}  // namespace hips
