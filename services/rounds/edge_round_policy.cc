#include "services/rounds/edge_round_policy.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/numeric/fedavg.h"

namespace hips {

std::shared_ptr<const WeightsSnapshot> EdgeRoundPolicy::Begin(
    const VersionState& tier, std::shared_ptr<const WeightsSnapshot> weights,
    std::vector<ContributorRef>* superseded) {
  weights = SyncPolicy::Begin(tier, std::move(weights), superseded);
  Draw(tier);
  // The version's rounds start afresh from HQ's weights, in this
  // aggregator's epoch, for the workers live now.
  edge_ = !tier.training_done;
  edge_round_ = 0;
  samples_ = 0;
  loss_ = 0;
  pushes_ = 0;
  version_members_.reset();
  if (edge_ && !host_->members().forming()) version_members_ = host_->members().Live();
  start_ = weights;
  copy_ = Serve(std::move(weights), edge_ ? options_.edge_epoch : 0);
  return copy_;
}

Verdict EdgeRoundPolicy::AdmitRetry(const Contribution& c, absl::Time now, const Take& take) {
  if (!edge_) return FedAvgPolicy::AdmitRetry(c, now, take);
  // Its first attempt may have moved another aggregator's copy (or this
  // one's, in a round that closed since): applying it again here could count
  // it twice. It is refused, and its round here waits for it no more.
  EmitIfDue(now);
  if (c.version == round_.version() && c.edge_round == edge_round_) {
    Cover(c.sender, c.version, now);
    EmitIfComplete();
  }
  return Verdict::Refused(
      DropReason::kEdgeRetry,
      absl::FailedPreconditionError(absl::StrCat(
          "a retried delta of version ", c.version, ", edge round ", c.edge_round,
          ", is not applied with edge rounds (its first attempt may be applied already)")));
}

bool EdgeRoundPolicy::Complete() const {
  if (!participants_.empty() || !version_members_.has_value()) return FedAvgPolicy::Complete();
  return LiveOnesDone(*version_members_);
}

std::vector<std::string> EdgeRoundPolicy::WaitingFor() const {
  if (!participants_.empty() || !version_members_.has_value()) return FedAvgPolicy::WaitingFor();
  return LiveOnesMissing(*version_members_);
}

void EdgeRoundPolicy::Emit() {
  if (!edge_ || round_.version() != tier_.version) return FedAvgPolicy::Emit();
  if (edge_round_ + 1 < mode().edge_rounds) return Advance();
  EmitAggregate();
}

void EdgeRoundPolicy::Advance() {
  const GradientAccumulator& acc = round_.accumulator();
  const int64_t n = acc.total_samples();
  auto next = std::make_shared<WeightsSnapshot>(*copy_);
  ApplyEdgeRound(acc.sum(), n, copy_->layout.buffer_ranges(), absl::MakeSpan(next->weights));
  next->edge_round = edge_round_ + 1;
  RoundOutput o;
  o.kind = RoundOutput::Kind::kEdgeRound;
  o.version = round_.version();
  o.contributors = acc.contributors();
  o.total_samples = n;
  o.loss_sum = acc.loss_sum();
  o.refs = std::move(refs_);
  refs_.clear();
  o.weights = next;
  o.trimmed = round_.TakeTrimmed();
  o.held_down = round_.TakeHeldDown();
  samples_ += n;
  loss_ += acc.loss_sum();
  pushes_ += static_cast<int64_t>(o.refs.size());
  edge_round_ = next->edge_round;
  copy_ = std::move(next);
  round_.Open(tier_.version);
  host_->Emit(std::move(o));
  // Nobody may be left to wait for (every drawn worker died): the next
  // round closes at once, and so on to the aggregate (at most E rounds).
  EmitIfComplete();
}

void EdgeRoundPolicy::EmitAggregate() {
  GradientAccumulator* acc = round_.mutable_accumulator();
  if (acc->contributors() == 0) {
    // Nobody pushed in the last round: an empty aggregate says this
    // aggregator is done with the version (the earlier rounds' work, if
    // any, has no pushes left to carry it: HQ's aggregates count
    // gradients).
    return FedAvgPolicy::Emit();
  }
  const std::vector<FloatRange> buffers = copy_->layout.buffer_ranges();
  const int64_t n = acc->total_samples();
  const double loss = acc->loss_sum();
  RoundOutput o;
  o.kind = RoundOutput::Kind::kRound;
  o.version = tier_.version;
  o.versions = {{o.version, acc->contributors()}};
  TakeSum(acc, &o);
  o.total_samples = samples_ + n;
  o.loss_sum = loss_ + loss;
  o.edge_pushes = pushes_;
  o.refs = std::move(refs_);
  refs_.clear();
  o.trimmed = round_.TakeTrimmed();
  o.held_down = round_.TakeHeldDown();
  std::vector<float> copy = copy_->weights;
  ApplyEdgeRound(o.sum, n, buffers, absl::MakeSpan(copy));
  EdgeAggregateInto(start_->weights, copy, o.total_samples, buffers, absl::MakeSpan(o.sum));
  host_->Emit(std::move(o));
}

}  // namespace hips
