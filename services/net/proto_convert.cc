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

absl::Status ValidateGradientHeader(const v1::GradientHeader& h) {
  if (absl::Status s = ValidateId(h.sender_id(), "sender id"); !s.ok()) return s;
  return ValidateCommon(h.version(), h.sample_count(), h.loss_sum(), h.num_floats());
}

absl::Status ValidateAggregateHeader(const v1::AggregateHeader& h) {
  if (absl::Status s = ValidateId(h.aggregator_id(), "aggregator id"); !s.ok()) return s;
  if (h.contributor_count() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("contributor count must be positive, got ", h.contributor_count()));
  }
  return ValidateCommon(h.version(), h.total_samples(), h.loss_sum(), h.num_floats());
}

}  // namespace hips
