#ifndef HIPS_SERVICES_ROUNDS_NORM_CLIPPER_H_
#define HIPS_SERVICES_ROUNDS_NORM_CLIPPER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "services/rounds/contribution.h"

// Bounded influence (docs/security.md, "Bounded influence"): a contribution
// whose L2 norm per sample is above a bound is scaled down to it before it
// is summed, so one member holding valid credentials cannot move the model
// further than the bound lets any member, whatever it sends.

namespace hips {

// --clip_norm: "auto" (the default: kDefaultMultiple times the median of the
// recent norms), "auto:K" (K times it, K in (0, 100]), "off" (or 0), or a
// fixed positive bound.
struct ClipNorm {
  static constexpr double kDefaultMultiple = 3.0;
  enum class Kind { kOff, kFixed, kAuto };
  Kind kind = Kind::kAuto;
  double bound = 0.0;                     // kFixed only
  double multiple = kDefaultMultiple;     // kAuto only
};

// --max_samples_per_push=auto: this many times the median of the recent
// sample counts.
inline constexpr double kSampleCapMultiple = 4.0;

// INVALID_ARGUMENT naming --clip_norm for anything else (negative, NaN,
// infinite, a word that is not auto or off).
absl::StatusOr<ClipNorm> ParseClipNorm(absl::string_view text);
// The same syntax for another running bound (--max_samples_per_push):
// `flag` names it in errors, `default_multiple` is what "auto" means.
absl::StatusOr<ClipNorm> ParseRunningBound(absl::string_view text, absl::string_view flag,
                                           double default_multiple);
std::string ClipNormName(const ClipNorm& clip, double default_multiple = ClipNorm::kDefaultMultiple);

// The bound of one tier. kAuto: `multiple` times the median of the last
// kWindow finite norms it saw (clipped ones included: the median stays put
// while fewer than half of them are an attacker's), no bound before
// kWarmup norms were seen, nor while that median is 0. Not thread-safe (the
// tier's lock).
class NormClipper {
 public:
  static constexpr int kWindow = 64;
  static constexpr int kWarmup = 4;

  explicit NormClipper(ClipNorm clip) : clip_(clip) {}

  // The factor in (0, 1] to scale a contribution of L2 norm `norm` per
  // sample by: 1 within the bound (or without one), else bound / norm. A
  // norm that is not finite is neither clipped nor remembered (the values
  // are refused as non-finite where they are summed).
  double Factor(double norm);
  // The bound now (0: none).
  double bound() const;
  const ClipNorm& clip() const { return clip_; }

 private:
  const ClipNorm clip_;
  std::vector<double> recent_;  // a ring of up to kWindow norms
  size_t next_ = 0;
};

// Scales `c` down to `clipper`'s bound when its L2 norm per sample (the
// norm of scale x values over its samples: the mean gradient it stands
// for) is above it, and returns that norm then (nothing if it was within
// the bound, or clipping is off: then no pass over the values).
std::optional<double> ClipContribution(NormClipper* clipper, Contribution* c);

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_NORM_CLIPPER_H_
