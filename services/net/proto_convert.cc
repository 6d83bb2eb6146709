#include "services/net/proto_convert.h"

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/core/gradient_accumulator.h"

namespace hips {
namespace {

absl::Status ValidateId(const std::string& id, const char* what) {
  if (id.empty() || id.size() > kMaxIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must have 1 to ", kMaxIdLength, " characters"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCommon(int64_t version, int64_t samples, double loss_sum,
                            int64_t num_floats) {
  if (version < 0) return absl::InvalidArgumentError(absl::StrCat("negative version ", version));
  if (samples <= 0 || samples > GradientAccumulator::kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample count must be in (0, 2^31], got ", samples));
  }
  if (!std::isfinite(loss_sum)) return absl::InvalidArgumentError("loss sum is not finite");
  if (num_floats < 0 || num_floats > ModelLayout::kMaxFloats) {
    return absl::InvalidArgumentError(absl::StrCat("announced float count ", num_floats));
  }
  return absl::OkStatus();
}

}  // namespace

void LayoutToProto(const ModelLayout& layout, v1::ModelLayout* out) {
  for (const TensorSpec& t : layout.tensors()) {
    v1::TensorSpec* spec = out->add_tensors();
    spec->set_name(t.name);
    for (int64_t d : t.shape) spec->add_shape(d);
  }
}

absl::StatusOr<ModelLayout> LayoutFromProto(const v1::ModelLayout& proto) {
  std::vector<TensorSpec> specs;
  for (const v1::TensorSpec& t : proto.tensors()) {
    specs.push_back({t.name(), std::vector<int64_t>(t.shape().begin(), t.shape().end())});
  }
  return ModelLayout::Create(std::move(specs));
}

void ModeToProto(const ModeConfig& mode, v1::ModeConfig* out) {
  switch (mode.mode) {
    case Mode::kSync:
      out->set_mode(v1::MODE_SYNC);
      break;
    case Mode::kAsync:
      out->set_mode(v1::MODE_ASYNC);
      break;
    case Mode::kSsp:
      out->set_mode(v1::MODE_SSP);
      break;
  }
  out->set_staleness(mode.staleness);
}

absl::StatusOr<ModeConfig> ModeFromProto(const v1::ModeConfig& proto) {
  ModeConfig mode;
  switch (proto.mode()) {
    case v1::MODE_SYNC:
      mode.mode = Mode::kSync;
      break;
    case v1::MODE_ASYNC:
      mode.mode = Mode::kAsync;
      break;
    case v1::MODE_SSP:
      mode.mode = Mode::kSsp;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown mode ", proto.mode()));
  }
  mode.staleness = proto.staleness();
  if (absl::Status s = ValidateModeConfig(mode); !s.ok()) return s;
  return mode;
}

absl::Status ValidateGradientHeader(const v1::GradientHeader& h) {
  if (absl::Status s = ValidateId(h.sender_id(), "sender id"); !s.ok()) return s;
  if (h.sequence() < 0) return absl::InvalidArgumentError("negative sequence number");
  return ValidateCommon(h.version(), h.sample_count(), h.loss_sum(), h.num_floats());
}

absl::Status ValidateAggregateHeader(const v1::AggregateHeader& h) {
  if (absl::Status s = ValidateId(h.aggregator_id(), "aggregator id"); !s.ok()) return s;
  if (h.sequence() < 0) return absl::InvalidArgumentError("negative sequence number");
  if (h.contributor_count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("contributor count must be positive, got ", h.contributor_count()));
  }
  if (h.contributor_versions_size() > 0) {
    int64_t total = 0;
    for (const v1::VersionCount& vc : h.contributor_versions()) {
      if (vc.version() < h.version() || vc.count() <= 0 || vc.count() > h.contributor_count()) {
        return absl::InvalidArgumentError(
            absl::StrCat("contributor versions must be >= ", h.version(),
                         " with counts in [1, contributors]; got ", vc.count(), " at version ",
                         vc.version()));
      }
      total += vc.count();
    }
    if (total != h.contributor_count()) {
      return absl::InvalidArgumentError(absl::StrCat("contributor versions count ", total,
                                                     " gradients, the header ",
                                                     h.contributor_count()));
    }
  }
  return ValidateCommon(h.version(), h.total_samples(), h.loss_sum(), h.num_floats());
}

}  // namespace hips
