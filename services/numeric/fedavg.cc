#include "services/numeric/fedavg.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"

namespace hips {

LocalTrainer::LocalTrainer(size_t num_floats, std::vector<FloatRange> buffers)
    : buffers_(std::move(buffers)),
      start_(num_floats),
      weights_(num_floats),
      momentum_(num_floats) {}

void LocalTrainer::Begin(absl::Span<const float> weights) {
  std::copy(weights.begin(), weights.end(), start_.begin());
  std::copy(weights.begin(), weights.end(), weights_.begin());
  steps_ = 0;
}

void LocalTrainer::Step(absl::Span<const float> grad, const LocalSgd& sgd, double proximal_mu) {
  const float prox = static_cast<float>(proximal_mu);
  const float lr = static_cast<float>(sgd.lr);
  const float mu = static_cast<float>(sgd.momentum);
  const float wd = static_cast<float>(sgd.weight_decay);
  const bool first = steps_ == 0;
  // Parameters in runs between the buffers (float32 throughout, as torch's
  // SGD computes).
  size_t begin = 0;
  auto train = [&](size_t end) {
    for (size_t i = begin; i < end; ++i) {
      float d = grad[i];
      if (prox != 0) d += prox * (weights_[i] - start_[i]);
      if (wd != 0) d += wd * weights_[i];
      float step = d;
      if (mu != 0) {
        momentum_[i] = first ? d : mu * momentum_[i] + d;
        step = sgd.nesterov ? d + mu * momentum_[i] : momentum_[i];
      }
      weights_[i] -= lr * step;
    }
  };
  for (const FloatRange& r : buffers_) {
    train(static_cast<size_t>(r.offset));
    std::copy(grad.begin() + r.offset, grad.begin() + r.offset + r.size,
              weights_.begin() + r.offset);
    begin = static_cast<size_t>(r.offset + r.size);
  }
  train(weights_.size());
  ++steps_;
}

void LocalTrainer::DeltaInto(absl::Span<float> out) const {
  for (size_t i = 0; i < weights_.size(); ++i) out[i] = start_[i] - weights_[i];
  for (const FloatRange& r : buffers_) {
    std::copy(weights_.begin() + r.offset, weights_.begin() + r.offset + r.size,
              out.begin() + r.offset);
  }
}

namespace {

// Calls param(begin, end) for each run of parameters and buffer(begin, end)
// for each buffer range, in order.
template <typename Param, typename Buffer>
void ForEachRun(size_t size, const std::vector<FloatRange>& buffers, Param param, Buffer buffer) {
  size_t begin = 0;
  for (const FloatRange& r : buffers) {
    param(begin, static_cast<size_t>(r.offset));
    buffer(static_cast<size_t>(r.offset), static_cast<size_t>(r.offset + r.size));
    begin = static_cast<size_t>(r.offset + r.size);
  }
  param(begin, size);
}

}  // namespace

void ApplyEdgeRound(absl::Span<const float> round_sum, int64_t round_samples,
                    const std::vector<FloatRange>& buffers, absl::Span<float> copy) {
  if (round_samples <= 0) return;
  const float n = static_cast<float>(round_samples);
  ForEachRun(
      copy.size(), buffers,
      [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) copy[i] -= round_sum[i] / n;
      },
      [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) copy[i] = round_sum[i] / n;
      });
}

void EdgeAggregateInto(absl::Span<const float> start, absl::Span<const float> copy, int64_t samples,
                       const std::vector<FloatRange>& buffers, absl::Span<float> out) {
  const float n = static_cast<float>(samples);
  ForEachRun(
      out.size(), buffers,
      [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) out[i] = (start[i] - copy[i]) * n;
      },
      [&](size_t begin, size_t end) {
        for (size_t i = begin; i < end; ++i) out[i] = copy[i] * n;
      });
}

}  // namespace hips
