#include "services/net/stream_guard.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "glog/logging.h"
#include "services/types/ids.h"

namespace hips {

StreamGuard::Slot::Slot(Slot&& other) noexcept : guard_(other.guard_), id_(other.id_) {
  other.guard_ = nullptr;
}

StreamGuard::Slot& StreamGuard::Slot::operator=(Slot&& other) noexcept {
  if (this != &other) {
    if (guard_ != nullptr) guard_->Close(id_);
    guard_ = other.guard_;
    id_ = other.id_;
    other.guard_ = nullptr;
  }
  return *this;
}

StreamGuard::Slot::~Slot() {
  if (guard_ != nullptr) guard_->Close(id_);
}

void StreamGuard::Slot::Progress() {
  if (guard_ != nullptr) guard_->Progress(id_);
}

void StreamGuard::Slot::Arrived() {
  if (guard_ != nullptr) guard_->Unwatch(id_);
}

StreamGuard::StreamGuard(int max_streams, absl::Duration idle, std::function<void()> on_stall,
                         int max_per_caller)
    : max_streams_(max_streams),
      max_per_caller_(max_per_caller),
      idle_(idle),
      on_stall_(std::move(on_stall)) {
  if (idle_ != absl::InfiniteDuration()) watcher_ = std::thread([this] { Watch(); });
}

StreamGuard::~StreamGuard() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
    changed_.SignalAll();
  }
  if (watcher_.joinable()) watcher_.join();
}

int64_t StreamGuard::HomesOfCaller(absl::string_view caller) {
  // A process hosting a range of homes may hold a member's streams for each.
  absl::ConsumePrefix(&caller, "certificate ");
  if (caller.empty() || caller.back() != ']') return 1;
  absl::StatusOr<HomeRange> range = ParseHomeRange(caller, "");
  return range.ok() ? range->count() : 1;
}

absl::StatusOr<StreamGuard::Slot> StreamGuard::Open(grpc::ServerContextBase* ctx, bool watch_idle,
                                                    const std::string& caller) {
  absl::MutexLock lock(&mu_);
  if (max_streams_ > 0 && static_cast<int>(streams_.size()) >= max_streams_) {
    return absl::ResourceExhaustedError(absl::StrCat("this server already serves ", streams_.size(),
                                                     " streams, its most (--max_streams)"));
  }
  if (!caller.empty() && max_per_caller_ > 0) {
    int& of_caller = per_caller_[caller];
    if (of_caller >= max_per_caller_ * HomesOfCaller(caller)) {
      return absl::ResourceExhaustedError(
          absl::StrCat(caller, " already holds ", of_caller,
                       " streams open here, one member's most (--max_streams_per_member)"));
    }
    ++of_caller;
  }
  const int64_t id = next_id_++;
  Stream& s = streams_[id];
  s.ctx = ctx;
  s.caller = caller;
  s.watched = watch_idle && idle_ != absl::InfiniteDuration();
  s.last_progress = absl::Now();
  if (s.watched) changed_.SignalAll();
  return Slot(this, id);
}

void StreamGuard::Progress(int64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(id);
  if (it != streams_.end()) it->second.last_progress = absl::Now();
}

void StreamGuard::Unwatch(int64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(id);
  // (A cancel already under way goes on: the stream was idle first.)
  if (it != streams_.end()) it->second.watched = false;
}

void StreamGuard::Close(int64_t id) {
  absl::MutexLock lock(&mu_);
  auto it = streams_.find(id);
  // The call may not end while the watcher cancels it (its context would go
  // away under TryCancel).
  while (it != streams_.end() && it->second.cancelling) {
    changed_.Wait(&mu_);
    it = streams_.find(id);
  }
  if (it == streams_.end()) return;
  if (!it->second.caller.empty() && max_per_caller_ > 0) {
    auto of_caller = per_caller_.find(it->second.caller);
    if (of_caller != per_caller_.end() && --of_caller->second <= 0) per_caller_.erase(of_caller);
  }
  streams_.erase(it);
}

int StreamGuard::open() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int>(streams_.size());
}

int64_t StreamGuard::stalled() const {
  absl::MutexLock lock(&mu_);
  return stalled_;
}

void StreamGuard::Watch() {
  mu_.Lock();
  while (!stop_) {
    const absl::Time now = absl::Now();
    absl::Time next = absl::InfiniteFuture();
    std::vector<std::pair<int64_t, grpc::ServerContextBase*>> stalled;
    for (auto& [id, s] : streams_) {
      if (!s.watched || s.cancelling) continue;
      const absl::Time due = s.last_progress + idle_;
      if (due <= now) {
        s.cancelling = true;
        stalled.emplace_back(id, s.ctx);
      } else {
        next = std::min(next, due);
      }
    }
    if (stalled.empty()) {
      changed_.WaitWithDeadline(&mu_, next);
      continue;
    }
    // TryCancel outside the lock: the call's reactions take it (Close).
    mu_.Unlock();
    for (auto& [id, ctx] : stalled) {
      LOG_EVERY_N(WARNING, 100) << "cancelling a push stream idle for " << idle_
                                << " (--stream_idle_ms; every 100th is logged)";
      ctx->TryCancel();
      if (on_stall_) on_stall_();
    }
    mu_.Lock();
    for (auto& [id, ctx] : stalled) {
      ++stalled_;
      auto it = streams_.find(id);
      if (it == streams_.end()) continue;
      it->second.cancelling = false;
      it->second.watched = false;  // cancelled once
    }
    changed_.SignalAll();
  }
  mu_.Unlock();
}

}  // namespace hips
