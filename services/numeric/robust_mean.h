#ifndef HIPS_SERVICES_NUMERIC_ROBUST_MEAN_H_
#define HIPS_SERVICES_NUMERIC_ROBUST_MEAN_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/types/encoding.h"

// A robust combination of a round's contributions (docs/security.md,
// "Robust combination"), instead of the weighted mean Σ n_i·g_i / Σ n_i:
//   1. outliers out: with 3 or more, a contribution whose distance to the
//      coordinate-wise median is above kOutlierFactor times the median of
//      those distances is left out whole (with few members a coordinate-
//      wise rule alone is biased: one liar always at the top of every
//      coordinate makes the median of three the larger honest value);
//   2. each coordinate is the mean of what is left of the rest's k values
//      after the `trim` smallest and the `trim` largest are dropped;
//   3. a round of only 2 (no majority: either may be the liar) counts the larger
//      of the two held to the smaller's L2 norm, so the round moves the
//      model no further than an honest member alone would, and never
//      against both: (g + h)/2 with |h| <= |g| has g·(g + h) >= 0. (Held
//      to 4 times it, non-IID honest pairs paid nothing but one CI run
//      under attack ended at 0.3875: docs/security.md.)
// Every contribution counts once, whatever sample count it claims; a few
// members that send anything at all move no coordinate beyond the range of
// the others'.

namespace hips {

// --robust and --trim_fraction.
struct RobustMean {
  enum class Kind { kNone, kTrimmedMean, kMedian };
  static constexpr double kDefaultTrimFraction = 0.1;
  Kind kind = Kind::kNone;
  // kTrimmedMean: the share of each end dropped, in [0, 0.5).
  double trim_fraction = kDefaultTrimFraction;
};

// "none", "trimmed_mean", "median"; INVALID_ARGUMENT naming --robust
// otherwise.
absl::StatusOr<RobustMean::Kind> ParseRobust(absl::string_view text);
std::string RobustName(RobustMean::Kind kind);
// INVALID_ARGUMENT naming --trim_fraction unless in [0, 0.5).
absl::Status ValidateTrimFraction(double fraction);

// Values dropped at each end of a coordinate's k: kMedian (k-1)/2 (the
// middle one, or the mean of the middle two); kTrimmedMean ceil(fraction·k),
// at least one once fraction > 0 (with three members one liar is dropped),
// at most (k-1)/2; kNone 0.
size_t TrimPerEnd(const RobustMean& robust, size_t k);

// A row of values that stands for factor · values[i].
struct ScaledRow {
  const float* values = nullptr;
  float factor = 1.0f;
};

// out[i] = scale · the mean of rows[0][i], ..., rows[k-1][i] (each times
// its factor) without their `trim` smallest and `trim` largest (k > 2·trim,
// every row of out.size() finite floats).
void TrimmedMeanInto(absl::Span<const ScaledRow> rows, size_t trim, float scale,
                     absl::Span<float> out);

// The rows (indexes, ascending) whose L2 distance to `median` is above
// kOutlierFactor times the median of the rows' distances; none with fewer
// than 3 rows or when that median is 0.
inline constexpr double kOutlierFactor = 4.0;
std::vector<size_t> OutlierRows(absl::Span<const ScaledRow> rows,
                                absl::Span<const float> median);

// What CombineInto did beyond the mean, as indexes in the order the
// contributions were added.
struct Combined {
  std::vector<size_t> outliers;  // left out whole (rule 1)
  // Held to the other one's norm in a round of 2 (rule 3) by more than
  // kOutlierFactor: a gradient that much larger than its round's other is
  // named (counted as clipped). Not a strike: with a liar sending zeros,
  // it is the honest member's.
  std::vector<size_t> held_down;
};

// A round's contributions held one by one for a robust combination: each
// is kept as its mean per sample (dense, decoded), then combined into a
// GradientAccumulator as if summed: the combination times the round's total
// samples, with the totals of everything added. Buffers are kept from round
// to round. Not thread-safe (the owner's lock).
class RobustCombiner {
 public:
  RobustCombiner(size_t num_floats, RobustMean robust);

  // Drops what the round held (keeps the buffers).
  void Reset();
  // Keeps values · scale / samples (the contribution's mean per sample):
  // plain float32 values whose buffer may be taken (adoptable) are kept as
  // they are, with that factor, and the owner gets a spare buffer back;
  // others are decoded. INVALID_ARGUMENT for the wrong size, a sample count outside (0, 2^31],
  // values that are not finite, or a combination that could overflow once
  // multiplied by the round's samples (NonFiniteError); nothing is kept
  // then.
  absl::Status Add(const EncodedValues& values, float scale, int64_t samples, double loss_sum,
                   int64_t contributors);
  // Writes the combination into `acc` (Reset first): its sum is the
  // combination times the samples of the contributions kept (outliers'
  // samples and loss do not count; every contribution is in its
  // contributors). Nothing held: `acc` is left reset.
  Combined CombineInto(GradientAccumulator* acc);

  size_t size() const { return used_; }
  const RobustMean& robust() const { return robust_; }

 private:
  // Row r's L2 norm (its values times its factor), from the receiver's
  // sum of squares if it kept one, else measured.
  double NormOfRow(size_t r, const ScaledRow& row) const;

  const size_t num_floats_;
  const RobustMean robust_;
  std::vector<std::vector<float>> rows_;  // the first used_ hold this round's
  size_t used_ = 0;
  struct Totals {
    int64_t samples = 0;
    double loss_sum = 0.0;
  };
  std::vector<Totals> totals_;   // per row held
  std::vector<float> factors_;   // per row held: what its values stand for
  std::vector<double> norms_;    // per row held: its values' sum of squares (-1: not known)
  GradientAccumulator decoder_;  // decodes and checks one contribution
  std::vector<float> median_;    // the coordinate-wise median, with 3 or more
  double max_abs_ = 0;           // over the rows held
  int64_t total_samples_ = 0;
  double loss_sum_ = 0.0;
  int64_t contributors_ = 0;
};

}  // namespace hips

#endif  // HIPS_SERVICES_NUMERIC_ROBUST_MEAN_H_
