#include "services/numeric/scaffold.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace hips {
namespace {

constexpr char kVariatePrefix[] = "scaffold.c/";

}  // namespace

absl::StatusOr<ModelLayout> WithControlVariates(const ModelLayout& model) {
  std::vector<TensorSpec> tensors = model.tensors();
  for (const TensorSpec& t : model.tensors()) {
    if (absl::StartsWith(t.name, kVariatePrefix)) {
      return absl::InvalidArgumentError(
          absl::StrCat("the model already holds control variates ('", t.name, "')"));
    }
    if (t.buffer) continue;
    tensors.push_back(TensorSpec{absl::StrCat(kVariatePrefix, t.name), t.shape, /*buffer=*/true});
  }
  if (tensors.size() == model.tensors().size()) {
    return absl::InvalidArgumentError("SCAFFOLD needs a model with parameters; this one has none");
  }
  return ModelLayout::Create(std::move(tensors));
}

ModelLayout WithoutControlVariates(const ModelLayout& served) {
  std::vector<TensorSpec> model;
  for (const TensorSpec& t : served.tensors()) {
    if (!absl::StartsWith(t.name, kVariatePrefix)) model.push_back(t);
  }
  if (model.size() == served.tensors().size()) return served;
  absl::StatusOr<ModelLayout> layout = ModelLayout::Create(std::move(model));
  if (!layout.ok() || !HasControlVariates(served, *layout)) return served;
  return *std::move(layout);
}

bool HasControlVariates(const ModelLayout& served, const ModelLayout& model) {
  if (served.tensors().size() <= model.tensors().size()) return false;
  absl::StatusOr<ModelLayout> expected = WithControlVariates(model);
  return expected.ok() && *expected == served;
}

std::vector<FloatRange> ParameterRanges(const ModelLayout& model) {
  std::vector<FloatRange> params;
  int64_t begin = 0;
  auto add = [&](int64_t end) {
    if (end > begin) params.push_back(FloatRange{begin, end - begin});
  };
  for (const FloatRange& r : model.buffer_ranges()) {
    add(r.offset);
    begin = r.offset + r.size;
  }
  add(model.num_floats());
  return params;
}

int64_t ParameterFloats(const ModelLayout& model) {
  int64_t n = 0;
  for (const FloatRange& r : ParameterRanges(model)) n += r.size;
  return n;
}

HomeVariate::HomeVariate(const ModelLayout& model)
    : params_(ParameterRanges(model)),
      c_i_(static_cast<size_t>(ParameterFloats(model))),
      c_(c_i_.size()),
      sum_(c_i_.size()) {}

void HomeVariate::Begin(absl::Span<const float> c) {
  std::copy(c.begin(), c.end(), c_.begin());
  std::fill(sum_.begin(), sum_.end(), 0.0);
  steps_ = 0;
}

void HomeVariate::Correct(absl::Span<float> grad) {
  size_t k = 0;  // (index into c, c_i and the sums)
  for (const FloatRange& r : params_) {
    for (int64_t i = r.offset; i < r.offset + r.size; ++i, ++k) {
      sum_[k] += grad[i];
      grad[i] += c_[k] - c_i_[k];
    }
  }
  ++steps_;
}

void HomeVariate::Finish(double participation, absl::Span<float> out) {
  const double n = static_cast<double>(steps_);
  for (size_t k = 0; k < c_i_.size(); ++k) {
    const float old = c_i_[k];
    if (steps_ > 0) c_i_[k] = static_cast<float>(sum_[k] / n);
    out[k] = static_cast<float>(c_[k] + participation * (c_i_[k] - old));
  }
}

}  // namespace hips
