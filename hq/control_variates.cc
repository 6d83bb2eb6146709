#include "hq/control_variates.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hips {

ControlVariateOptimizer::ControlVariateOptimizer(std::unique_ptr<Optimizer> model,
                                                 int64_t variate_floats)
    : model_(std::move(model)),
      c_(static_cast<size_t>(variate_floats)),
      mean_(static_cast<size_t>(model_->num_floats() + variate_floats)) {}

absl::Status ControlVariateOptimizer::Step(absl::Span<const float> grad, double learning_rate) {
  if (static_cast<int64_t>(grad.size()) != num_floats()) {
    return absl::InvalidArgumentError(absl::StrCat("a step of ", grad.size(), " floats; HQ holds ",
                                                   num_floats(), " with its control variates"));
  }
  const size_t n = static_cast<size_t>(model_->num_floats());
  if (absl::Status s = model_->Step(grad.first(n), learning_rate); !s.ok()) return s;
  std::copy(grad.begin() + n, grad.end(), c_.begin());
  return absl::OkStatus();
}

void ControlVariateOptimizer::GetWeights(absl::Span<float> out) const {
  const size_t n = static_cast<size_t>(model_->num_floats());
  model_->GetWeights(out.first(n));
  std::copy(c_.begin(), c_.end(), out.begin() + n);
}

absl::Status ControlVariateOptimizer::SetWeights(absl::Span<const float> weights) {
  if (static_cast<int64_t>(weights.size()) != num_floats()) {
    return absl::InvalidArgumentError(absl::StrCat("weights of ", weights.size(),
                                                   " floats; HQ holds ", num_floats(),
                                                   " with its control variates"));
  }
  const size_t n = static_cast<size_t>(model_->num_floats());
  if (absl::Status s = model_->SetWeights(weights.first(n)); !s.ok()) return s;
  std::copy(weights.begin() + n, weights.end(), c_.begin());
  return absl::OkStatus();
}

}  // namespace hips
