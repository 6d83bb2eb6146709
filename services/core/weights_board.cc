#include "services/core/weights_board.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"

namespace hips {

WeightsBoard::WeightsBoard(Clock* clock) : clock_(clock) {
  timer_ = clock_->NewTimer([this] { return NextDeadline(); },
                            [this](absl::Time now) { ExpireWaits(now); });
}

WeightsBoard::~WeightsBoard() { Shutdown(); }

bool WeightsBoard::Satisfies(int64_t min_version, const EdgePosition& edge,
                             int64_t incarnation) const {
  if (latest_ == nullptr) return false;
  const bool other_epoch = edge.epoch != 0 && latest_->edge_epoch != edge.epoch;
  return latest_->version > min_version ||
         (latest_->version == min_version && (latest_->edge_round >= edge.round || other_epoch)) ||
         latest_->training_done || (incarnation != 0 && latest_->incarnation != incarnation);
}

bool WeightsBoard::Publish(Snapshot snapshot) {
  std::vector<Callback> answered;
  Snapshot published;
  {
    absl::MutexLock lock(&mu_);
    if (latest_ != nullptr && snapshot->incarnation == latest_->incarnation &&
        std::make_pair(snapshot->version, snapshot->edge_round) <=
            std::make_pair(latest_->version, latest_->edge_round) &&
        !(snapshot->version == latest_->version && snapshot->training_done &&
          !latest_->training_done)) {
      return false;
    }
    latest_ = std::move(snapshot);
    published = latest_;
    for (auto it = waits_.begin(); it != waits_.end();) {
      if (Satisfies(it->second.min_version, it->second.edge, it->second.incarnation)) {
        answered.push_back(std::move(it->second.done));
        it = waits_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (Callback& done : answered) done(published);
  return true;
}

WeightsBoard::Snapshot WeightsBoard::Latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

int64_t WeightsBoard::WaitAsync(int64_t min_version, absl::Time deadline, int64_t incarnation,
                                Callback done, EdgePosition edge) const {
  absl::StatusOr<Snapshot> answer;
  int64_t id;
  bool pending = false;
  bool earliest = false;
  {
    absl::MutexLock lock(&mu_);
    id = next_id_++;
    if (shutdown_) {
      answer = absl::UnavailableError("shutting down");
    } else if (Satisfies(min_version, edge, incarnation)) {
      answer = latest_;
    } else if (deadline <= clock_->Now()) {
      answer = absl::DeadlineExceededError(
          absl::StrCat("no weights of version >= ", min_version, " yet"));
    } else {
      pending = true;
      earliest = deadline < NextDeadlineLocked();
      waits_.emplace(id, Wait{min_version, edge, deadline, incarnation, std::move(done)});
    }
  }
  if (pending) {
    if (earliest) timer_->Poke();  // the timer re-reads its deadline
  } else {
    done(std::move(answer));
  }
  return id;
}

bool WeightsBoard::CancelWait(int64_t id) const {
  absl::MutexLock lock(&mu_);
  return waits_.erase(id) > 0;
}

absl::StatusOr<WeightsBoard::Snapshot> WeightsBoard::WaitFor(int64_t min_version,
                                                             absl::Time deadline,
                                                             int64_t incarnation,
                                                             EdgePosition edge) const {
  absl::Notification answered;
  absl::StatusOr<Snapshot> result;
  WaitAsync(
      min_version, deadline, incarnation,
      [&](absl::StatusOr<Snapshot> answer) {
        result = std::move(answer);
        answered.Notify();
      },
      edge);
  answered.WaitForNotification();
  return result;
}

absl::Time WeightsBoard::NextDeadline() const {
  absl::MutexLock lock(&mu_);
  return NextDeadlineLocked();
}

absl::Time WeightsBoard::NextDeadlineLocked() const {
  absl::Time next = absl::InfiniteFuture();
  for (const auto& [id, wait] : waits_) next = std::min(next, wait.deadline);
  return next;
}

void WeightsBoard::ExpireWaits(absl::Time now) {
  std::vector<std::pair<Callback, int64_t>> expired;
  {
    absl::MutexLock lock(&mu_);
    for (auto it = waits_.begin(); it != waits_.end();) {
      if (it->second.deadline <= now) {
        expired.emplace_back(std::move(it->second.done), it->second.min_version);
        it = waits_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [done, min_version] : expired) {
    done(absl::DeadlineExceededError(
        absl::StrCat("no weights of version >= ", min_version, " yet")));
  }
}

void WeightsBoard::Shutdown() {
  std::map<int64_t, Wait> pending;
  {
    absl::MutexLock lock(&mu_);
    shutdown_ = true;
    pending.swap(waits_);
  }
  for (auto& [id, wait] : pending) wait.done(absl::UnavailableError("shutting down"));
  if (timer_ != nullptr) timer_->Stop();
}

}  // namespace hips
