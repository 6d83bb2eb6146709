#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "aggregator/aggregator.h"
#include "glog/logging.h"
#include "services/rounds/round_policies.h"

// The aggregator's side towards HQ, what its HqLink calls: HQ's weights in
// (each opens its version's round and is served to the workers), closed
// aggregates out and HQ's answers back. The workers' side and the rounds
// are in aggregator.cc.

namespace hips {

void Aggregator::EndForming() {
  {
    absl::MutexLock lock(&mu_);
    if (!members_.forming()) return;
    LOG(INFO) << "joining a cluster that is already training: rounds need only live workers";
    members_.EndForming();
    if (policy_ != nullptr) policy_->MembersChanged();
    ServeIfFormed();
  }
  DeliverApplied();
}

void Aggregator::ServeIfFormed() {
  if (held_for_forming_ == nullptr || members_.forming()) return;
  LOG(INFO) << "formed: " << members_.Live().size() << " workers live; serving version "
            << held_for_forming_->version << " with its draw";
  applied_weights_ = policy_->Formed(Versions(), std::move(held_for_forming_));
  held_for_forming_ = nullptr;
  applied_pending_.store(true);
}

std::shared_ptr<const WeightsSnapshot> Aggregator::HqWeights() const {
  absl::MutexLock lock(&mu_);
  return hq_weights_;
}

void Aggregator::SetDataPositions(std::map<std::string, int64_t> positions) {
  absl::MutexLock lock(&mu_);
  data_positions_ = std::move(positions);
}

void Aggregator::PublishWeights(std::shared_ptr<const WeightsSnapshot> snapshot) {
  Completions completions;
  absl::ReleasableMutexLock publish_lock(&publish_mu_);
  {
    absl::MutexLock lock(&mu_);
    if (HoldForRound(snapshot)) {
      snapshot = nullptr;
    } else {
      snapshot = Adopt(std::move(snapshot), &completions);
    }
  }
  if (snapshot != nullptr) board_.Publish(std::move(snapshot));
  publish_lock.Release();
  Run(std::move(completions));
  DeliverApplied();
}

std::shared_ptr<const WeightsSnapshot> Aggregator::Adopt(
    std::shared_ptr<const WeightsSnapshot> snapshot, Completions* completions) {
  snapshot = TakeWeights(std::move(snapshot), completions);
  if (snapshot != nullptr && policy_->AwaitsForming()) {
    held_for_forming_ = std::move(snapshot);  // (served by ServeIfFormed)
    snapshot = nullptr;
    ServeIfFormed();
  }
  return snapshot;
}

bool Aggregator::HoldForRound(const std::shared_ptr<const WeightsSnapshot>& s) {
  // Only the next versions of the same line, mode and model: anything else
  // (HQ restarted, a mode switch, the end of training) supersedes the open
  // round at once, as without a buffer.
  if (policy_ == nullptr || version_ < 0 || s->incarnation != incarnation_ || s->mode != mode_ ||
      s->mode_since != mode_since_ || s->training_done || s->weights.size() != num_floats_ ||
      s->version <= version_ ||
      (held_for_round_ != nullptr && s->version <= held_for_round_->version) ||
      !policy_->HoldsNewerWeights()) {
    return false;
  }
  if (held_for_round_ == nullptr) {
    VLOG(1) << "holding HQ's version " << s->version << " until the round of version " << version_
            << " closes (--hq_buffer)";
  }
  held_for_round_ = s;
  hq_weights_ = s;  // (what the next pull and delta start from)
  known_version_ = std::max(known_version_, s->version);
  // DeliverApplied looks again after each call that may close the round.
  applied_pending_.store(true);
  return true;
}

std::shared_ptr<const WeightsSnapshot> Aggregator::TakeHeldForRound(Completions* completions) {
  if (held_for_round_ == nullptr) return nullptr;
  if (policy_ != nullptr && policy_->HoldsNewerWeights()) {
    applied_pending_.store(true);  // (still held: look again next time)
    return nullptr;
  }
  std::shared_ptr<const WeightsSnapshot> held = std::move(held_for_round_);
  held_for_round_ = nullptr;
  return Adopt(std::move(held), completions);
}

std::shared_ptr<const WeightsSnapshot> Aggregator::TakeWeights(
    std::shared_ptr<const WeightsSnapshot> snapshot, Completions* completions) {
  const bool hq_restarted = version_ >= 0 && snapshot->incarnation != incarnation_;
  if (version_ >= 0 && !hq_restarted &&
      (snapshot->version < version_ ||
       (snapshot->version == version_ && (training_done_ || !snapshot->training_done)))) {
    return nullptr;
  }
  if (hq_restarted) {
    // HQ restarted (from a checkpoint, possibly older than what is here):
    // its versions start a new line, and nothing summed for the old one
    // can be applied.
    LOG(WARNING) << "HQ restarted: incarnation " << snapshot->incarnation << " at version "
                 << snapshot->version << " (was at version " << version_ << ")";
    DiscardAll(DropReason::kHqRestarted, completions);
    known_version_ = -1;
  }
  incarnation_ = snapshot->incarnation;
  hq_weights_ = snapshot;
  held_for_forming_ = nullptr;  // (superseded)
  // (Held weights of another line, or not newer, are superseded: an HQ
  // restarted from an older checkpoint has lower versions.)
  if (held_for_round_ != nullptr && (held_for_round_->incarnation != snapshot->incarnation ||
                                     held_for_round_->version <= snapshot->version)) {
    held_for_round_ = nullptr;
  }
  const size_t num_floats = snapshot->weights.size();
  const bool resized = policy_ == nullptr || num_floats != num_floats_;
  if (resized) {
    // HQ trains another model now: what was summed for the old one is void.
    DiscardAll(DropReason::kInvalid, completions);
    num_floats_ = num_floats;
    queue_.Reset(num_floats, snapshot->layout.buffer_ranges());
  }
  const bool mode_changed = snapshot->mode != mode_ || snapshot->mode_since != mode_since_;
  if (snapshot->training_done) {
    DiscardAll(DropReason::kUnfinished, completions);
  } else if (mode_changed) {
    DiscardAll(DropReason::kModeChanged, completions);
    if (version_ >= 0) {
      LOG(INFO) << "mode " << DescribeMode(snapshot->mode) << " from version "
                << snapshot->mode_since;
    }
  }
  version_ = snapshot->version;
  mode_ = snapshot->mode;
  mode_since_ = snapshot->mode_since;
  training_done_ = snapshot->training_done;
  known_version_ = std::max(known_version_, version_);
  if (resized || mode_changed) {
    policy_ =
        MakeRoundPolicy(PolicyOptionsOf(options_, mode_, num_floats_, edge_epoch_, &spares_), this);
  }
  // The round opens before any worker can see its weights, so no gradient
  // of this version can arrive before its round exists. What the policy
  // still holds of an older version HQ moved on without (a round closed at
  // HQ's deadline) is dropped.
  std::vector<ContributorRef> superseded;
  snapshot = policy_->Begin(Versions(), std::move(snapshot), &superseded);
  round_opened_at_ = clock_->Now();
  DropHeld(std::move(superseded), DropReason::kSuperseded, completions);
  return snapshot;
}

std::optional<AggregatePush> Aggregator::NextAggregate() {
  std::optional<AggregatePush> out;
  Completions completions;
  {
    absl::MutexLock lock(&mu_);
    auto ready = [this]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_ || !queue_.empty(); };
    mu_.Await(absl::Condition(&ready));
    if (shutdown_) return std::nullopt;
    out = queue_.Pop();
    TakeParked(&completions);  // there is room again
  }
  Run(std::move(completions));
  DeliverApplied();  // (a parked push may have closed a round applied here)
  queue_.Encode(&*out);
  return out;
}

void Aggregator::ReportForwarded(const AggregatePush& a, const absl::StatusOr<PushResult>& result) {
  Completions completions;
  {
    absl::MutexLock lock(&mu_);
    counters_.gradients_pending -= a.contributors;
    counters_.gradients_forwarded += a.contributors;
    counters_.aggregate_bytes_sent += static_cast<int64_t>(a.values().bytes.bytes());
    if (result.ok()) {
      known_version_ = std::max(known_version_, result->newest_version);
    } else {
      ++counters_.aggregates_refused;
    }
    for (const ContributorRef& ref : a.contributor_list) Settle(ref, result, &completions);
  }
  Run(std::move(completions));
}

void Aggregator::RecycleSum(std::vector<float> sum) {
  absl::MutexLock lock(&mu_);
  if (sum.size() == num_floats_) spares_.Give(std::move(sum));
}

std::vector<float> Aggregator::SpareBuffer() {
  absl::MutexLock lock(&mu_);
  return spares_.TakeIfKept(num_floats_);
}

void Aggregator::ReportUndelivered(const AggregatePush& a) {
  Completions completions;
  {
    absl::MutexLock lock(&mu_);
    Undelivered(a, absl::UnavailableError("this aggregator shut down before HQ answered"),
                &completions);
  }
  Run(std::move(completions));
}

void Aggregator::Undelivered(const AggregatePush& a, const absl::Status& why,
                             Completions* completions) {
  counters_.gradients_pending -= a.contributors;
  counters_.gradients_dropped[std::string(DropReasonName(DropReason::kShutdown))] += a.contributors;
  for (const ContributorRef& ref : a.contributor_list) Settle(ref, why, completions);
}

}  // namespace hips
