#include "services/rounds/async_policy.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hips {

AsyncPolicy::AsyncPolicy(RoundPolicyOptions options, RoundHost* host)
    : RoundPolicy(std::move(options), host),
      batch_(options_.num_floats, options_.coalesce_capacity, options_.coalesce_window) {}

std::shared_ptr<const WeightsSnapshot> AsyncPolicy::Begin(
    const VersionState& tier, std::shared_ptr<const WeightsSnapshot> weights,
    std::vector<ContributorRef>* superseded) {
  // A batch goes on across versions: its gradients are judged by staleness.
  tier_ = tier;
  return weights;
}

Verdict AsyncPolicy::AdmitChecked(const Contribution& c, absl::Time now, const Take& take) {
  const bool hq = options_.tier == RoundPolicyOptions::Tier::kHq;
  // The top is at least at newest_version(), so a contribution this stale
  // is refused there for sure.
  if (std::optional<Refusal> r = CheckStaleness(
          mode(), c.version, host_->newest_version() - c.version, hq ? "aggregate" : "gradient")) {
    return Verdict::Refused(*std::move(r));
  }
  if (hq) return AdmitAggregate(c, take);
  // A second gradient of a sender: send the batch so far, start another.
  if (batch_.HasSender(c.sender)) EmitBatch();
  if (absl::Status s = batch_.Add(c, now); !s.ok()) return Verdict::Refused(RefusalReason(s), s);
  refs_.push_back(take());
  if (batch_.full() || options_.coalesce_window == absl::ZeroDuration()) EmitBatch();
  return Verdict::Taken();
}

Verdict AsyncPolicy::AdmitAggregate(const Contribution& c, const Take& take) {
  const int64_t newest = host_->newest_version();
  RoundOutput o;
  o.kind = RoundOutput::Kind::kBatch;
  o.version = c.version;  // the oldest of its gradients
  o.versions = c.versions;
  if (o.versions.empty()) o.versions = {{c.version, c.contributors}};
  int64_t counted = 0;
  for (const auto& [version, count] : o.versions) {
    if (version < c.version || version > newest || count <= 0) {
      return Verdict::Refused(DropReason::kInvalid,
                              absl::InvalidArgumentError(absl::StrCat(
                                  "contributor version ", version, " outside [", c.version, ", ",
                                  newest, "] or count ", count, " not positive")));
    }
    o.staleness[newest - version] += count;
    counted += count;
  }
  if (counted != c.contributors) {
    return Verdict::Refused(DropReason::kInvalid, absl::InvalidArgumentError(absl::StrCat(
                                                      "contributor versions count ", counted,
                                                      " gradients of ", c.contributors)));
  }
  o.contributors = c.contributors;
  o.total_samples = c.samples;
  o.loss_sum = c.loss_sum;
  o.values = c.values;
  o.refs = {take()};
  host_->Emit(std::move(o));
  return Verdict::Taken();
}

void AsyncPolicy::Refused(const std::string& sender, int64_t version, DropReason reason,
                          absl::Time now) {
  if (options_.tier != RoundPolicyOptions::Tier::kAggregator || reason != DropReason::kNonFinite ||
      version < 0) {
    return;
  }
  RoundOutput report;
  report.kind = RoundOutput::Kind::kBatch;
  report.version = version;
  host_->Emit(std::move(report));
}

void AsyncPolicy::Poll(absl::Time now) {
  if (now >= batch_.CloseAt()) EmitBatch();
}

void AsyncPolicy::EmitBatch() {
  if (batch_.empty()) return;
  RoundOutput o;
  o.kind = RoundOutput::Kind::kBatch;
  o.version = batch_.oldest_version();
  o.versions = batch_.versions();
  TakeSum(batch_.mutable_accumulator(), &o);
  o.refs = std::move(refs_);
  refs_.clear();
  batch_.Reset();
  host_->Emit(std::move(o));
}

std::vector<ContributorRef> AsyncPolicy::Release() {
  batch_.Reset();
  std::vector<ContributorRef> refs = std::move(refs_);
  refs_.clear();
  return refs;
}

SgdSettings AsyncPolicy::StepSettings(const SgdSettings& base) const {
  // Asynchrony itself acts like extra momentum (docs/modes.md).
  SgdSettings wanted = base;
  if (options_.hq.async_momentum >= 0) {
    wanted.momentum = std::min(base.momentum, options_.hq.async_momentum);
    wanted.nesterov = base.nesterov && wanted.momentum > 0;
  }
  return wanted;
}

double AsyncPolicy::StepRate(const RoundOutput& out, double scheduled_lr,
                             const SgdSettings& in_use) const {
  double lr = scheduled_lr * MomentumFactor(in_use);
  if (options_.hq.lr_reference_samples > 0) {
    lr *= static_cast<double>(out.total_samples) / options_.hq.lr_reference_samples;
  }
  // With coalescing, the mean of the gradients' factors.
  double factor = 0;
  for (const auto& [tau, count] : out.staleness) {
    factor += StalenessFactor(options_.hq.staleness_lr, tau) * static_cast<double>(count);
  }
  return lr * factor / static_cast<double>(out.contributors);
}

}  // namespace hips
