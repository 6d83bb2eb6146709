#ifndef HIPS_SERVICES_NUMERIC_WEIGHTS_CHAIN_H_
#define HIPS_SERVICES_NUMERIC_WEIGHTS_CHAIN_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "services/numeric/compression.h"
#include "services/types/payloads.h"

// Lighter weights downstream (docs/wan.md): HQ sends an aggregator that
// holds the previous weights only a compressed delta.
//
// The sender keeps a *chain* c of weights that every receiver can rebuild
// bit for bit: c_v = c_u + Q(w_v - c_u), Q a lossy encoding (bf16, fp16 or
// top-k), u the chain's previous step. A receiver holding c_u gets Q(...)
// and adds it as the sender did; anyone else (joining, or behind by more
// than one step) gets c_v whole. What Q dropped stays in w - c and goes
// with the next delta (the chain is its own error feedback). Every
// `resync_every` versions, and with the final weights, the step is c_v = w_v
// sent whole: after it every receiver holds HQ's weights exactly.
//
// How far a receiver's weights are from HQ's between resyncs, per
// coordinate, after the step to v from u (d = w_v - c_u, what the step
// encodes): with bf16 at most 2^-8 |d| (one rounding to 8 significant bits)
// plus 2^-24 |c_v| (the float add); fp16 the same with 2^-11 |d| plus 2^-25
// (half its smallest step, below its normal range); with top-k, |d| where the coordinate was not
// sent, 0 where it was. d is one update plus the previous step's leftover, so with bf16 the
// distance stays within about 2^-8 of one update. Each step records the measured distance (max |w_v
// - c_v|).

namespace hips {

struct WeightsChainOptions {
  // kBf16, kFp16 or kTopK (fp32 deltas would be no lighter than weights).
  Encoding encoding = Encoding::kBf16;
  double topk_ratio = 0.01;
  // A step at least this many versions after the last resync is a resync.
  int64_t resync_every = 100;
};

absl::Status ValidateWeightsChainOptions(const WeightsChainOptions& options);

// One step of the chain: the weights c_v a receiver ends with, and how to
// get there from c_{base}.
struct ChainStep {
  // c_v, with the version and everything else of HQ's w_v.
  std::shared_ptr<const WeightsSnapshot> weights;
  // -1 for a resync (c_v = w_v, sent whole to everyone); else the version
  // whose chain weights the delta applies to.
  int64_t base_version = -1;
  // Q(w_v - c_base) in `encoding` (what EncodedValues::bytes views).
  Encoding encoding = Encoding::kBf16;
  std::string delta;
  int64_t nonzeros = 0;  // kTopK only
  // max |w_v - c_v| over the coordinates (0 after a resync).
  float drift = 0.0f;
  // WeightsChecksum(c_v) of a delta step: a receiver whose rebuilt weights
  // do not match asks for them whole.
  uint64_t checksum = 0;

  bool resync() const { return base_version < 0; }
  // The delta as values to decode (views `delta`).
  EncodedValues DeltaValues() const;
};

// A checksum of weights' bits: Σ bits(w_i) · (2i + 1) mod 2^64, with the
// count. Any one float changed, or two swapped, changes it (each odd factor
// is invertible mod 2^64); one vectorized pass. Not a defence against an
// attacker (TLS is), a check that a receiver rebuilt the same bits.
uint64_t WeightsChecksum(absl::Span<const float> weights);

// c_base + decode(delta), the receiver's half of a step, written into
// `*out` (resized). The sender computes its c_v with this same function,
// so both get the same bits. Checks the delta (CheckEncodedValues) and its
// size against `base`, and that every sum is finite; on an error `*out`
// holds nothing usable (callers drop it).
absl::Status ApplyWeightsDelta(absl::Span<const float> base, const EncodedValues& delta,
                               std::vector<float>* out);

// The sender's chain (HQ's, for its PullWeights). Thread-safe.
class WeightsChain {
 public:
  explicit WeightsChain(WeightsChainOptions options);

  const WeightsChainOptions& options() const { return options_; }

  // The step that brings a receiver to `w` (HQ's newest weights): computed
  // once per version, then the same step for every caller. A `w` older than
  // the chain's step (a slower caller) gets the chain's newer step: the
  // chain never goes back. A `w` of another HQ incarnation starts the chain
  // over with a resync, as do `w`'s final weights and every weights whose
  // model layout differs from the chain's.
  std::shared_ptr<const ChainStep> StepTo(const std::shared_ptr<const WeightsSnapshot>& w);

  // The newest step (null before the first).
  std::shared_ptr<const ChainStep> Latest() const;

 private:
  std::shared_ptr<const ChainStep> Resync(const std::shared_ptr<const WeightsSnapshot>& w)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const WeightsChainOptions options_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const ChainStep> latest_ ABSL_GUARDED_BY(mu_);
  int64_t last_resync_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<float> difference_ ABSL_GUARDED_BY(mu_);
};

}  // namespace hips

#endif  // HIPS_SERVICES_NUMERIC_WEIGHTS_CHAIN_H_
