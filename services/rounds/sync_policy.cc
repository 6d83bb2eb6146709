#include "services/rounds/sync_policy.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace hips {

SyncPolicy::SyncPolicy(RoundPolicyOptions options, RoundHost* host)
    : RoundPolicy(std::move(options), host),
      // Complete when every member the host waits for is in (Complete).
      round_(options_.num_floats, /*expected_contributions=*/0, options_.quorum,
             options_.round_deadline, options_.robust) {}

std::shared_ptr<const WeightsSnapshot> SyncPolicy::Begin(
    const VersionState& tier, std::shared_ptr<const WeightsSnapshot> weights,
    std::vector<ContributorRef>* superseded) {
  // The tier moved on without the open round (it closed at a deadline
  // above): nothing summed for it can be applied now.
  for (ContributorRef& ref : refs_) superseded->push_back(std::move(ref));
  refs_.clear();
  tier_ = tier;
  // The round opens before anyone can see the version's weights, so no
  // contribution of that version arrives before its round exists. After
  // training nothing can join (versions are >= 0).
  round_.Open(tier.training_done ? -1 : tier.version);
  round_members_.reset();
  (void)RoundMembers();  // (the live ones now, unless the tier still forms)
  return weights;
}

const absl::flat_hash_set<std::string>* SyncPolicy::RoundMembers() const {
  if (!round_members_.has_value()) {
    if (host_->members().forming()) return nullptr;
    const std::vector<std::string> live = host_->members().Live();
    round_members_.emplace(live.begin(), live.end());
  }
  return &*round_members_;
}

Verdict SyncPolicy::AdmitChecked(const Contribution& c, absl::Time now, const Take& take) {
  // A round past its deadline closes (and is sent on, or applied) before a
  // late contribution is looked at.
  EmitIfDue(now);
  if (std::optional<Refusal> r = CheckRound(c)) return Verdict::Refused(*std::move(r));
  DropReason reason;
  absl::StatusOr<SyncRound::AddOutcome> outcome = round_.Add(c, &reason, now);
  if (!outcome.ok()) {
    EmitIfComplete();  // a refusal may still end its sender's part
    return Verdict::Refused(reason, outcome.status());
  }
  if (*outcome == SyncRound::AddOutcome::kDuplicate) {
    // This member's contribution of this version is in already (a retry,
    // or the member restarted and computed it again): not summed twice.
    EmitIfComplete();
    return Verdict::Duplicate();
  }
  refs_.push_back(take());
  if (round_.state() == SyncRound::State::kClosed) {
    Emit();
  } else {
    EmitIfComplete();
  }
  return Verdict::Taken();
}

Verdict SyncPolicy::AdmitRetry(const Contribution& c, absl::Time now, const Take& take) {
  // Its first attempt may have reached HQ through another aggregator: it
  // goes on alone, so that HQ can tell, and counts for the round here.
  if (c.version == round_.version()) Cover(c.sender, c.version, now);
  Verdict verdict = Alone(c, take);
  EmitIfComplete();
  return verdict;
}

std::optional<Refusal> SyncPolicy::CheckRound(const Contribution& c) const {
  if (c.version != round_.version() || c.edge_round == open_edge_round()) return std::nullopt;
  // A delta on another copy of this version's weights (an edge round
  // closed since, or another aggregator's).
  const bool stale = c.edge_round < open_edge_round();
  return Refusal{stale ? DropReason::kStaleVersion : DropReason::kFutureVersion,
                 absl::FailedPreconditionError(absl::StrCat(
                     "a delta computed on edge round ", c.edge_round, " of version ", c.version,
                     "; this aggregator's copy is at edge round ", open_edge_round()))};
}

void SyncPolicy::Cover(const std::string& sender, int64_t version, absl::Time now) {
  EmitIfDue(now);
  Contribution mark;
  mark.sender = sender;
  mark.members = {sender};
  mark.version = version;
  mark.contributors = 0;
  DropReason ignored;
  (void)round_.Add(mark, &ignored, now);
}

void SyncPolicy::MarkDone(const std::string& sender, int64_t version, absl::Time now) {
  if (tier_.training_done) return;
  round_.MarkSenderDone(sender, version);
  EmitIfComplete();
}

void SyncPolicy::MembersChanged() {
  if (!tier_.training_done) EmitIfComplete();
}

void SyncPolicy::Poll(absl::Time now) {
  if (tier_.training_done) return;
  EmitIfComplete();
  EmitIfDue(now);
}

std::vector<std::string> SyncPolicy::WaitingFor() const {
  std::vector<std::string> missing;
  if (tier_.training_done || round_.state() != SyncRound::State::kOpen) return missing;
  const absl::flat_hash_set<std::string>* waited = RoundMembers();
  for (const std::string& id : host_->members().Live()) {
    if ((waited == nullptr || waited->contains(id)) && !round_.senders().contains(id) &&
        host_->WaitsFor(id)) {
      missing.push_back(id);
    }
  }
  std::sort(missing.begin(), missing.end());
  return missing;
}

bool SyncPolicy::HoldsNewerWeights() const {
  if (options_.tier != RoundPolicyOptions::Tier::kAggregator || mode().hq_buffer == 0 ||
      tier_.training_done || round_.state() != SyncRound::State::kOpen) {
    return false;
  }
  // Someone live still computes on the round's version, or contributions
  // are in a round that cannot close yet: while the tier forms, everyone
  // live may have sent (WaitingFor is empty) and the round still waits for
  // the members its flags expect. Newer weights now would supersede them.
  return !refs_.empty() || !WaitingFor().empty();
}

bool SyncPolicy::Complete() const {
  const Membership& members = host_->members();
  const absl::flat_hash_set<std::string>* waited = RoundMembers();
  return waited != nullptr && !round_.senders().empty() &&
         members.AllLiveIn(round_.senders(), [&](const std::string& id) {
           return waited->contains(id) && host_->WaitsFor(id);
         });
}

void SyncPolicy::EmitIfComplete() {
  if (round_.state() != SyncRound::State::kOpen || !Complete()) return;
  if (options_.tier == RoundPolicyOptions::Tier::kHq && round_.accumulator().contributors() == 0) {
    // Everyone it waits for is done and nothing is left to apply (every
    // contribution was refused, or nobody was drawn): the version moves on
    // with the weights unchanged. (Training it again would wait for
    // members that have all moved on.)
    LOG(WARNING) << ModeName(mode().mode) << " round of version " << round_.version()
                 << " applied nothing: every contribution was refused or empty";
  }
  round_.Close();
  Emit();
}

void SyncPolicy::EmitIfDue(absl::Time now) {
  if (!round_.CloseIfDue(now)) return;
  VLOG(1) << "round " << round_.version() << " closed at its deadline with " << round_.received();
  Emit();
}

void SyncPolicy::Emit() { host_->Emit(TakeRound()); }

RoundOutput SyncPolicy::TakeRound() {
  RoundOutput o;
  o.kind = RoundOutput::Kind::kRound;
  o.version = round_.version();
  GradientAccumulator* acc = round_.mutable_accumulator();
  if (acc->contributors() > 0) o.versions = {{o.version, acc->contributors()}};
  TakeSum(acc, &o);
  o.refs = std::move(refs_);
  refs_.clear();
  o.trimmed = round_.TakeTrimmed();
  o.held_down = round_.TakeHeldDown();
  return o;
}

std::vector<ContributorRef> SyncPolicy::Release() {
  std::vector<ContributorRef> refs = std::move(refs_);
  refs_.clear();
  return refs;
}

}  // namespace hips
