#include "aggregator/aggregator_options.h"

#include "absl/strings/str_cat.h"
#include "services/core/quarantine.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/types/ids.h"

namespace hips {

absl::Status ValidateAggregatorOptions(const AggregatorOptions& o) {
  if (absl::Status s = ValidateMemberId(o.id, "the aggregator id (--id)"); !s.ok()) return s;
  if (o.expected_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("an aggregator needs at least 1 worker, got ", o.expected_workers));
  }
  if (o.max_workers != 0 && o.max_workers < o.expected_workers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max workers must be at least the ", o.expected_workers, " expected, got ", o.max_workers));
  }
  if (o.max_batch_samples < 1 || o.max_batch_samples > GradientAccumulator::kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("max batch samples must be in [1, 2^31], got ", o.max_batch_samples));
  }
  if (o.quorum_workers < 0 || o.quorum_workers > o.expected_workers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker quorum must be in [0, ", o.expected_workers, "], got ", o.quorum_workers));
  }
  if (o.round_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        "the round deadline (--round_deadline_ms) must be positive, or 0 for none");
  }
  if (absl::Status s = ValidateCompressionOptions(o.compression); !s.ok()) return s;
  if (absl::Status s = ValidateTrimFraction(o.robust.trim_fraction); !s.ok()) return s;
  if (absl::Status s = ValidateQuarantineMs(absl::ToInt64Milliseconds(o.quarantine)); !s.ok()) {
    return s;
  }
  if (o.max_queued_aggregates < 1) {
    return absl::InvalidArgumentError("at least 1 aggregate must be allowed to queue");
  }
  if (o.lease <= absl::ZeroDuration())
    return absl::InvalidArgumentError("the lease (--lease_ms) must be positive");
  if (o.coalesce_window < absl::ZeroDuration() || o.coalesce_window > absl::Seconds(10)) {
    return absl::InvalidArgumentError(
        "the coalescing window (--coalesce_ms) must be in [0, 10000] ms");
  }
  return absl::OkStatus();
}

RoundPolicyOptions PolicyOptionsOf(const AggregatorOptions& options, const ModeConfig& mode,
                                   size_t num_floats, int64_t epoch, BufferPool* spares) {
  RoundPolicyOptions o;
  o.tier = RoundPolicyOptions::Tier::kAggregator;
  o.mode = mode;
  o.num_floats = num_floats;
  o.quorum = options.quorum_workers == 0 ? options.expected_workers : options.quorum_workers;
  o.round_deadline = options.round_deadline;
  o.coalesce_capacity = options.expected_workers;
  o.coalesce_window = options.coalesce_window;
  o.id = options.id;
  o.edge_epoch = epoch;
  o.spares = spares;
  o.robust = options.robust;
  return o;
}

}  // namespace hips
