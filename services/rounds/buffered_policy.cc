#include "services/rounds/buffered_policy.h"

#include <algorithm>
#include <utility>

#include "glog/logging.h"
#include "services/rounds/fedavg_policy.h"
#include "services/rounds/sync_policy.h"

namespace hips {

BufferedPolicy::BufferedPolicy(RoundPolicyOptions options, RoundHost* host)
    : RoundPolicy(std::move(options), host), buffer_(options_.num_floats) {
  if (mode().mode == Mode::kFedAvg) {
    step_ = std::make_unique<FedAvgPolicy>(options_, host);
  } else {
    step_ = std::make_unique<SyncPolicy>(options_, host);
  }
}

std::shared_ptr<const WeightsSnapshot> BufferedPolicy::Begin(
    const VersionState& tier, std::shared_ptr<const WeightsSnapshot> weights,
    std::vector<ContributorRef>* superseded) {
  // The buffer goes on across versions: its aggregates are weighed by
  // staleness, not refused.
  tier_ = tier;
  return weights;
}

Verdict BufferedPolicy::AdmitChecked(const Contribution& c, absl::Time now, const Take& take) {
  // A buffer past its deadline closes before a late aggregate is added.
  Poll(now);
  // (Admit refused versions ahead of HQ's and before the mode's switch.)
  const int64_t tau = tier_.version - c.version;
  const double weight = StalenessWeight(mode(), tau);
  if (absl::Status s = buffer_.Add(c.values, static_cast<float>(c.scale * weight), c.samples,
                                   c.loss_sum, c.contributors);
      !s.ok()) {
    return Verdict::Refused(RefusalReason(s), s);
  }
  versions_[c.version] += c.contributors;
  refs_.push_back(take());
  if (c.completes_sender) {
    if (aggregates_ == 0) first_arrival_ = now;
    ++aggregates_;
    Arrived(c.sender);
  }
  if (aggregates_ >= mode().hq_buffer) {
    Emit(/*everyone=*/false);
  } else {
    EmitIfEveryoneIn();
  }
  return Verdict::Taken();
}

void BufferedPolicy::MarkDone(const std::string& sender, int64_t version, absl::Time now) {
  if (tier_.training_done) return;
  Arrived(sender);
  EmitIfEveryoneIn();
}

void BufferedPolicy::Refused(const std::string& sender, int64_t version, DropReason reason,
                             absl::Time now) {
  // Whatever the reason, that MDC has sent for the version it trained on
  // and now waits for newer weights.
  MarkDone(sender, version, now);
}

void BufferedPolicy::Arrived(const std::string& sender) { arrived_.insert(sender); }

absl::Time BufferedPolicy::CloseAt() const {
  const int64_t quorum = std::min<int64_t>(std::max(1, options_.quorum), mode().hq_buffer);
  if (tier_.training_done || aggregates_ < quorum ||
      options_.round_deadline == absl::InfiniteDuration()) {
    return absl::InfiniteFuture();
  }
  return first_arrival_ + options_.round_deadline;
}

void BufferedPolicy::Poll(absl::Time now) {
  if (tier_.training_done) return;
  if (now >= CloseAt()) {
    VLOG(1) << "buffer closed at its deadline with " << aggregates_ << " of "
            << mode().hq_buffer << " aggregates";
    Emit(/*everyone=*/false);
    return;
  }
  EmitIfEveryoneIn();
}

std::vector<std::string> BufferedPolicy::WaitingFor() const {
  std::vector<std::string> missing;
  if (tier_.training_done) return missing;
  for (const std::string& id : host_->members().Live()) {
    if (!arrived_.contains(id) && host_->WaitsFor(id)) missing.push_back(id);
  }
  std::sort(missing.begin(), missing.end());
  return missing;
}

void BufferedPolicy::EmitIfEveryoneIn() {
  // While the tier forms only K closes a buffer: members still to join
  // would send too.
  if (tier_.training_done || arrived_.empty() || host_->members().forming()) return;
  const Membership& members = host_->members();
  for (const std::string& id : members.Live()) {
    if (!arrived_.contains(id) && host_->WaitsFor(id)) return;
  }
  Emit(/*everyone=*/true);
}

int64_t BufferedPolicy::WaitedFor() const {
  int64_t m = 0;
  for (const std::string& id : host_->members().Live()) m += host_->WaitsFor(id);
  return m;
}

void BufferedPolicy::Emit(bool everyone) {
  RoundOutput o;
  o.kind = RoundOutput::Kind::kRound;
  // Every live MDC had its turn: a whole round (as sync's, which averages
  // over whoever sent). Else K of M (those that sent and left since
  // count: a round would have had them).
  const int64_t mdcs = std::max(aggregates_, WaitedFor());
  o.round_share = everyone || mdcs == 0
                      ? 1.0
                      : static_cast<double>(aggregates_) / static_cast<double>(mdcs);
  o.version = versions_.empty() ? tier_.version : versions_.begin()->first;
  o.versions = std::move(versions_);
  versions_.clear();
  TakeSum(&buffer_, &o);
  buffer_.Reset();
  o.refs = std::move(refs_);
  refs_.clear();
  if (o.contributors == 0) {
    VLOG(1) << "buffer of version " << tier_.version << " closed with nothing to apply ("
            << arrived_.size() << " MDCs sent empty or refused aggregates)";
  }
  aggregates_ = 0;
  first_arrival_ = absl::InfiniteFuture();
  arrived_.clear();
  host_->Emit(std::move(o));
}

std::vector<ContributorRef> BufferedPolicy::Release() {
  std::vector<ContributorRef> refs = std::move(refs_);
  refs_.clear();
  buffer_.Reset();
  versions_.clear();
  aggregates_ = 0;
  first_arrival_ = absl::InfiniteFuture();
  arrived_.clear();
  return refs;
}

}  // namespace hips
