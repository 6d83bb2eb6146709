#include "services/rounds/round_policy.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/numeric/float_kernels.h"
#include "services/numeric/parallel.h"
#include "services/types/float_pieces.h"

namespace hips {

Verdict RoundPolicy::Admit(const Contribution& c, absl::Time now, const Take& take) {
  const char* what = options_.tier == RoundPolicyOptions::Tier::kHq ? "aggregate" : "gradient";
  if (std::optional<Refusal> r = CheckVersion(tier_, c.version, what)) return Verdict::Refused(*r);
  if (c.retry) return AdmitRetry(c, now, take);
  return AdmitChecked(c, now, take);
}

void RoundPolicy::Refused(const std::string& sender, int64_t version, DropReason reason,
                          absl::Time now) {
  if (reason == DropReason::kInvalid || reason == DropReason::kNonFinite) {
    MarkDone(sender, version, now);
  }
}

Verdict RoundPolicy::AdmitRetry(const Contribution& c, absl::Time now, const Take& take) {
  return Alone(c, take);
}

Verdict RoundPolicy::Alone(const Contribution& c, const Take& take) {
  // (A temporary sum: it holds one contribution, no spare buffer for it.)
  GradientAccumulator alone(options_.num_floats);
  if (absl::Status s = alone.Add(c.values, c.scale, c.samples, c.loss_sum, 1); !s.ok()) {
    return Verdict::Refused(RefusalReason(s), s);
  }
  RoundOutput o;
  o.kind = RoundOutput::Kind::kAlone;
  o.version = c.version;
  o.versions = {{c.version, 1}};
  TakeSum(&alone, &o, /*refill=*/false);
  o.refs = {take()};
  host_->Emit(std::move(o));
  return Verdict::Taken();
}

void RoundPolicy::TakeSum(GradientAccumulator* acc, RoundOutput* o, bool refill) const {
  o->contributors = acc->contributors();
  o->total_samples = acc->total_samples();
  o->loss_sum = acc->loss_sum();
  for (const auto& [version, count] : o->versions) o->staleness[tier_.version - version] += count;
  if (o->contributors == 0) return;
  o->sum = acc->TakeSum();
  if (refill && options_.spares != nullptr) {
    if (std::vector<float> spare = options_.spares->TakeIfKept(options_.num_floats);
        !spare.empty()) {
      acc->GiveBuffer(std::move(spare));
    }
  }
}

double RoundPolicy::MomentumFactor(const SgdSettings& in_use) const {
  const double base = options_.hq.base.momentum;
  return base < 1 ? (1.0 - in_use.momentum) / (1.0 - base) : 1.0;
}

double RoundPolicy::StepRate(const RoundOutput& out, double scheduled_lr,
                             const SgdSettings& in_use) const {
  return scheduled_lr * MomentumFactor(in_use);
}

AggregatePush AggregateOf(RoundOutput o) {
  AggregatePush out;
  out.version = o.version;
  out.total_samples = o.total_samples;
  out.contributors = o.contributors;
  out.loss_sum = o.loss_sum;
  // One version: the plain form of an aggregate.
  if (o.versions.size() > 1) out.contributor_versions = std::move(o.versions);
  out.contributor_list = std::move(o.refs);
  out.single = o.kind == RoundOutput::Kind::kAlone;
  out.edge_pushes = o.edge_pushes;
  out.sum = std::move(o.sum);
  return out;
}

void RoundMeanInto(const RoundOutput& o, absl::Span<float> mean) {
  if (!o.values.has_value()) {
    // On HQ this is on every sync round's critical path: both cores.
    const float inv = 1.0f / static_cast<float>(o.total_samples);
    const char* sum = reinterpret_cast<const char*>(o.sum.data());
    float* into = mean.data();
    ParallelRanges(mean.size(), [sum, into, inv](size_t begin, size_t end) {
      ScaleRun(into + begin, sum + begin * sizeof(float), end - begin, inv);
    });
    return;
  }
  // Validated by the tier: mean.size() floats, finite.
  const float samples = static_cast<float>(o.total_samples);
  const EncodedValues& values = *o.values;
  float* out = mean.data();
  if (values.encoding == Encoding::kFp32) {
    values.bytes.ForEachRun([out, samples](size_t first, const char* bytes, size_t n) {
      for (size_t i = 0; i < n; ++i) out[first + i] = LoadFloat(bytes + 4 * i) / samples;
    });
  } else {
    DecodeInto(values, out);
    for (float& m : mean) m /= samples;
  }
}

absl::Status CheckModeFitsOptimizer(const ModeConfig& mode, absl::string_view optimizer) {
  // (The only mode with such a rule; a policy of its own would say so.)
  if (mode.mode == Mode::kFedAvg && optimizer != "sgd") {
    return absl::InvalidArgumentError(
        absl::StrCat("fedavg runs SGD on the workers: it needs --optimizer=sgd (HQ's optimizer is ",
                     optimizer, ")"));
  }
  return absl::OkStatus();
}

absl::Status CheckModeFitsControlVariates(const ModeConfig& mode, bool control_variates) {
  if (!control_variates || mode.mode == Mode::kFedAvg) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--fedavg_algorithm=scaffold trains in fedavg only (HQ serves its control "
                   "variates with the weights); the mode is ",
                   DescribeMode(mode)));
}

}  // namespace hips
