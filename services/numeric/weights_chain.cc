#include "services/numeric/weights_chain.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/numeric/buffer_pool.h"

namespace hips {

absl::Status ValidateWeightsChainOptions(const WeightsChainOptions& options) {
  if (options.encoding == Encoding::kFp32) {
    return absl::InvalidArgumentError(
        "weights compression: fp32 deltas are no lighter than the weights (bf16, fp16 or topk)");
  }
  if (!(options.topk_ratio > 0 && options.topk_ratio <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--weights_topk_ratio must be in (0, 1], got ", options.topk_ratio));
  }
  if (options.resync_every < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--weights_resync_every must be at least 1, got ", options.resync_every));
  }
  return absl::OkStatus();
}

namespace {

EncodedValues DeltaOf(const std::string& bytes, Encoding encoding, size_t num_floats,
                      int64_t nonzeros) {
  EncodedValues values;
  values.encoding = encoding;
  if (!bytes.empty()) values.bytes.Append(bytes);
  values.num_floats = static_cast<int64_t>(num_floats);
  values.nonzeros = nonzeros;
  return values;
}

}  // namespace

EncodedValues ChainStep::DeltaValues() const {
  return DeltaOf(delta, encoding, weights->weights.size(), nonzeros);
}

absl::Status ApplyWeightsDelta(absl::Span<const float> base, const EncodedValues& delta,
                               std::vector<float>* out) {
  if (delta.num_floats != static_cast<int64_t>(base.size())) {
    return absl::InvalidArgumentError(absl::StrCat("a weights delta of ", delta.num_floats,
                                                   " floats for weights of ", base.size()));
  }
  if (absl::Status s = CheckEncodedValues(delta); !s.ok()) return s;
  out->resize(base.size());
  float* c = out->data();
  std::copy(base.begin(), base.end(), c);
  AddDecodedInto(delta, c);
  for (size_t i = 0; i < base.size(); ++i) {
    if (!std::isfinite(c[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat("a weights delta makes weight ", i, " non-finite"));
    }
  }
  return absl::OkStatus();
}

namespace {

// A snapshot of `w`'s version, mode and everything else, to hold other
// weights (every field but the weights).
std::shared_ptr<WeightsSnapshot> SnapshotLike(const WeightsSnapshot& w) {
  std::shared_ptr<WeightsSnapshot> c = NewRecycledSnapshot();
  c->version = w.version;
  c->layout = w.layout;
  c->training_done = w.training_done;
  c->mode = w.mode;
  c->mode_since = w.mode_since;
  c->incarnation = w.incarnation;
  c->local_sgd = w.local_sgd;
  c->participants = w.participants;
  return c;
}

}  // namespace

WeightsChain::WeightsChain(WeightsChainOptions options) : options_(options) {}

std::shared_ptr<const ChainStep> WeightsChain::Latest() const {
  absl::MutexLock lock(&mu_);
  return latest_;
}

uint64_t WeightsChecksum(absl::Span<const float> weights) {
  const size_t n = weights.size();
  // 32-bit bits times a 32-bit odd factor, summed in 64 bits: one
  // widening multiply per float, which the compiler vectorizes (n < 2^31,
  // so 2i + 1 fits in 32 bits). Eight lanes, summed at the end.
  auto bits = [&weights](size_t i) {
    uint32_t b;
    std::memcpy(&b, &weights[i], sizeof(b));
    return static_cast<uint64_t>(b);
  };
  uint64_t lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (uint32_t k = 0; k < 8; ++k) {
      const uint32_t factor = 2 * static_cast<uint32_t>(i) + 2 * k + 1;
      lanes[k] += bits(i + k) * factor;
    }
  }
  uint64_t sum = 0;
  for (uint64_t lane : lanes) sum += lane;
  for (; i < n; ++i) sum += bits(i) * (2 * static_cast<uint32_t>(i) + 1);
  return sum ^ (static_cast<uint64_t>(n) * 0x9e3779b97f4a7c15ull);
}

std::shared_ptr<const ChainStep> WeightsChain::Resync(
    const std::shared_ptr<const WeightsSnapshot>& w) {
  auto step = std::make_shared<ChainStep>();
  step->weights = w;  // c_v = w_v: the very weights, no copy
  step->encoding = options_.encoding;
  latest_ = step;
  last_resync_ = w->version;
  return step;
}

std::shared_ptr<const ChainStep> WeightsChain::StepTo(
    const std::shared_ptr<const WeightsSnapshot>& w) {
  absl::MutexLock lock(&mu_);
  if (latest_ == nullptr) return Resync(w);
  const WeightsSnapshot& held = *latest_->weights;
  if (w->incarnation != held.incarnation || !(w->layout == held.layout)) return Resync(w);
  if (w->version < held.version) return latest_;
  if (w->version == held.version && (held.training_done || !w->training_done)) return latest_;
  if (w->training_done || w->version - last_resync_ >= options_.resync_every) return Resync(w);

  const size_t n = w->weights.size();
  difference_.resize(n);
  for (size_t i = 0; i < n; ++i) difference_[i] = w->weights[i] - held.weights[i];
  CompressionOptions compression;
  compression.encoding = options_.encoding;
  compression.topk_ratio = options_.topk_ratio;
  compression.error_feedback = false;  // the chain carries what Q drops
  Compressor compressor(compression, n);
  auto step = std::make_shared<ChainStep>();
  step->base_version = held.version;
  step->encoding = options_.encoding;
  step->nonzeros = compressor.Encode(difference_, &step->delta);
  std::shared_ptr<WeightsSnapshot> c = SnapshotLike(*w);
  absl::Status applied = ApplyWeightsDelta(
      held.weights, DeltaOf(step->delta, step->encoding, n, step->nonzeros), &c->weights);
  // A delta whose sum overflows (weights near the float range) cannot go as
  // a delta: the weights go whole.
  if (!applied.ok()) return Resync(w);
  float drift = 0.0f;
  for (size_t i = 0; i < n; ++i) drift = std::max(drift, std::fabs(w->weights[i] - c->weights[i]));
  step->drift = drift;
  step->checksum = WeightsChecksum(c->weights);
  c->drift = drift;
  step->weights = std::move(c);
  latest_ = step;
  return step;
}

}  // namespace hips
