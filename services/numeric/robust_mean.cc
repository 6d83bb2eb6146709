#include "services/numeric/robust_mean.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/float_kernels.h"
#include "services/numeric/parallel.h"
#include "services/types/drop_reason.h"

namespace hips {

namespace {

// Up to this many rows a block of coordinates is sorted by a network of
// comparators over whole rows (odd-even transposition: k passes, each a
// vectorized min/max of row pairs); beyond, each coordinate's k values are
// gathered and sorted on their own.
constexpr size_t kNetworkRows = 32;
// Coordinates per block: k rows of a block stay in L2.
constexpr size_t kBlock = 1024;

inline const char* Bytes(const float* p) { return reinterpret_cast<const char*>(p); }

// One block of n <= kBlock coordinates from `begin`, sorted in `scratch`
// (k rows of kBlock floats). `out` may be a row's own values: the block is
// read before it is written.
void NetworkBlock(absl::Span<const ScaledRow> rows, size_t trim, float factor, size_t begin,
                  size_t n, float* scratch, float* out) {
  const size_t k = rows.size();
  for (size_t r = 0; r < k; ++r) {
    ScaleRun(scratch + r * kBlock, Bytes(rows[r].values + begin), n, rows[r].factor);
  }
  for (size_t pass = 0; pass < k; ++pass) {
    for (size_t j = pass % 2; j + 1 < k; j += 2) {
      MinMaxRuns(scratch + j * kBlock, scratch + (j + 1) * kBlock, n);
    }
  }
  // Row j of the scratch now holds each coordinate's j-th smallest value.
  float* o = out + begin;
  std::copy_n(scratch + trim * kBlock, n, o);
  for (size_t j = trim + 1; j + trim < k; ++j) AddRun(o, scratch + j * kBlock, n);
  for (size_t i = 0; i < n; ++i) o[i] *= factor;
}

// The same, coordinate by coordinate: its k values gathered and sorted
// (`out` may be a row's values too).
void SortedCoordinates(absl::Span<const ScaledRow> rows, size_t trim, float factor, size_t begin,
                       absl::Span<float> out) {
  const size_t k = rows.size();
  std::vector<float> column(k);
  for (size_t i = 0; i < out.size(); ++i) {
    for (size_t r = 0; r < k; ++r) column[r] = rows[r].factor * rows[r].values[begin + i];
    std::sort(column.begin(), column.end());
    float sum = 0;
    for (size_t j = trim; j + trim < k; ++j) sum += column[j];
    out[i] = factor * sum;
  }
}

// Σ factor_r · rows[r], times `factor`: the mean, nothing to sort. `out`
// may be the first row's own values.
void SumRows(absl::Span<const ScaledRow> rows, float factor, size_t begin, absl::Span<float> out) {
  if (out.data() == rows[0].values + begin) {
    ScaleInPlace(out.data(), out.size(), factor * rows[0].factor);
  } else {
    ScaleRun(out.data(), Bytes(rows[0].values + begin), out.size(), factor * rows[0].factor);
  }
  for (size_t r = 1; r < rows.size(); ++r) {
    AddScaledRun(out.data(), Bytes(rows[r].values + begin), out.size(), factor * rows[r].factor);
  }
}

}  // namespace

absl::StatusOr<RobustMean::Kind> ParseRobust(absl::string_view text) {
  if (text == "none") return RobustMean::Kind::kNone;
  if (text == "trimmed_mean") return RobustMean::Kind::kTrimmedMean;
  if (text == "median") return RobustMean::Kind::kMedian;
  return absl::InvalidArgumentError(absl::StrCat(
      "--robust must be none, trimmed_mean or median, got \"", absl::CHexEscape(text), "\""));
}

std::string RobustName(RobustMean::Kind kind) {
  switch (kind) {
    case RobustMean::Kind::kNone:
      return "none";
    case RobustMean::Kind::kTrimmedMean:
      return "trimmed_mean";
    case RobustMean::Kind::kMedian:
      return "median";
  }
  return "none";
}

absl::Status ValidateTrimFraction(double fraction) {
  if (fraction >= 0 && fraction < 0.5) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--trim_fraction must be in [0, 0.5), got ", fraction));
}

size_t TrimPerEnd(const RobustMean& robust, size_t k) {
  if (k == 0) return 0;
  const size_t most = (k - 1) / 2;
  switch (robust.kind) {
    case RobustMean::Kind::kNone:
      return 0;
    case RobustMean::Kind::kMedian:
      return most;
    case RobustMean::Kind::kTrimmedMean:
      break;
  }
  if (!(robust.trim_fraction > 0)) return 0;
  const double wanted = std::ceil(robust.trim_fraction * static_cast<double>(k) - 1e-9);
  return std::min(most, static_cast<size_t>(wanted));
}

void TrimmedMeanInto(absl::Span<const ScaledRow> rows, size_t trim, float scale,
                     absl::Span<float> out) {
  const size_t k = rows.size();
  if (k == 0 || 2 * trim >= k) return;
  const float factor = scale / static_cast<float>(k - 2 * trim);
  ParallelRanges(out.size(), [&](size_t begin, size_t end) {
    const absl::Span<float> range = out.subspan(begin, end - begin);
    if (trim == 0) return SumRows(rows, factor, begin, range);
    if (k > kNetworkRows) return SortedCoordinates(rows, trim, factor, begin, range);
    std::vector<float> scratch(k * kBlock);
    for (size_t first = 0; first < range.size(); first += kBlock) {
      NetworkBlock(rows, trim, factor, begin + first, std::min(kBlock, range.size() - first),
                   scratch.data(), out.data());
    }
  });
}

std::vector<size_t> OutlierRows(absl::Span<const ScaledRow> rows,
                                absl::Span<const float> median) {
  const size_t k = rows.size();
  if (k < 3) return {};
  std::vector<double> distance(k);
  for (size_t r = 0; r < k; ++r) {
    distance[r] = std::sqrt(
        SquaredDistanceOfRuns(rows[r].values, rows[r].factor, median.data(), median.size()));
  }
  std::vector<double> sorted = distance;
  const auto middle = sorted.begin() + static_cast<std::ptrdiff_t>(k / 2);
  std::nth_element(sorted.begin(), middle, sorted.end());
  std::vector<size_t> outliers;
  if (!(*middle > 0)) return outliers;
  for (size_t r = 0; r < k; ++r) {
    if (distance[r] > kOutlierFactor * *middle) outliers.push_back(r);
  }
  return outliers;
}

RobustCombiner::RobustCombiner(size_t num_floats, RobustMean robust)
    : num_floats_(num_floats), robust_(robust), decoder_(num_floats) {}

void RobustCombiner::Reset() {
  used_ = 0;
  max_abs_ = 0;
  total_samples_ = 0;
  loss_sum_ = 0.0;
  contributors_ = 0;
}

absl::Status RobustCombiner::Add(const EncodedValues& values, float scale, int64_t samples,
                                 double loss_sum, int64_t contributors) {
  if (values.num_floats != static_cast<int64_t>(num_floats_)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gradient has ", values.num_floats, " floats, the model has ", num_floats_));
  }
  if (samples <= 0 || samples > GradientAccumulator::kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample count must be in (0, 2^31], got ", samples));
  }
  if (!std::isfinite(loss_sum_ + loss_sum)) {
    return NonFiniteError("loss total would not be finite");
  }
  if (used_ == rows_.size()) {
    rows_.emplace_back();
    totals_.emplace_back();
    factors_.emplace_back();
    norms_.emplace_back();
  }
  const float per_sample = static_cast<float>(static_cast<double>(scale) / samples);
  const bool take = values.encoding == Encoding::kFp32 && values.adoptable != nullptr &&
                    values.adoptable->size() == num_floats_ &&
                    values.bytes.pieces().size() == 1 &&
                    values.bytes.pieces()[0].data() ==
                        reinterpret_cast<const char*>(values.adoptable->data());
  double row_max = 0;
  if (take) {
    uint32_t bits = values.max_abs_bits;
    if (bits == kUnknownMaxBits) bits = MaxAbsBits(values.bytes);
    if (bits >= kNonFiniteBits) return CheckFinite(values.bytes);
    float max_in;
    std::memcpy(&max_in, &bits, sizeof(max_in));
    row_max = static_cast<double>(max_in) * std::abs(static_cast<double>(per_sample));
  } else {
    decoder_.Reset();
    decoder_.GiveBuffer(std::move(rows_[used_]));
    absl::Status decoded = decoder_.Add(values, per_sample, 1, 0.0, 1);
    row_max = decoder_.bound();
    rows_[used_] = decoder_.TakeBuffer();
    if (!decoded.ok()) return decoded;
  }
  // The combination lies within the rows' range; times the round's samples
  // it must stay a float.
  const double max_abs = std::max(max_abs_, row_max);
  if (max_abs * static_cast<double>(total_samples_ + samples) * (1 + 1e-6) >=
      static_cast<double>(std::numeric_limits<float>::max())) {
    return NonFiniteError("the combination would overflow to infinity");
  }
  if (take) std::swap(rows_[used_], *values.adoptable);  // (the owner's gets the spare)
  factors_[used_] = take ? per_sample : 1.0f;
  // The receiver's sum of squares of the values as they are kept, when it
  // took one (the same number SquaredNormOfRun gives: float_kernels.h).
  norms_[used_] = take && values.squared_norm >= 0 ? values.squared_norm : -1.0;
  totals_[used_] = Totals{samples, loss_sum};
  ++used_;
  max_abs_ = max_abs;
  total_samples_ += samples;
  loss_sum_ += loss_sum;
  contributors_ += contributors;
  return absl::OkStatus();
}

double RobustCombiner::NormOfRow(size_t r, const ScaledRow& row) const {
  double squares = norms_[r];
  if (squares < 0) squares = SquaredNormOfRun(Bytes(row.values), num_floats_);
  return std::sqrt(squares) * std::abs(static_cast<double>(row.factor));
}

Combined RobustCombiner::CombineInto(GradientAccumulator* acc) {
  acc->Reset();
  if (used_ == 0) return {};
  Combined combined;
  std::vector<ScaledRow> rows(used_);
  for (size_t r = 0; r < used_; ++r) rows[r] = ScaledRow{rows_[r].data(), factors_[r]};
  // The combination is written over the first row (each block or
  // coordinate is read before it is written), whose buffer leaves with the
  // sum as an adopted one would; the accumulator's own, if any, takes its
  // place (it goes to the next contribution's owner as a spare).
  std::vector<float> sum = std::move(rows_[0]);
  rows_[0] = acc->TakeBuffer();
  if (used_ >= 3) {
    median_.resize(num_floats_);
    TrimmedMeanInto(rows, (used_ - 1) / 2, 1.0f, absl::MakeSpan(median_));
    combined.outliers = OutlierRows(rows, median_);
  }
  std::vector<ScaledRow> kept;
  std::vector<size_t> kept_index;
  int64_t samples = 0;
  double loss = 0.0;
  for (size_t r = 0, next = 0; r < used_; ++r) {
    if (next < combined.outliers.size() && combined.outliers[next] == r) {
      ++next;
      continue;
    }
    kept.push_back(rows[r]);
    kept_index.push_back(r);
    samples += totals_[r].samples;
    loss += totals_[r].loss_sum;
  }
  if (used_ == 2) {
    // Rule 3 (a round of 2, not 2 left of a round with a majority): the
    // larger held to the smaller's norm.
    const double n0 = NormOfRow(kept_index[0], kept[0]);
    const double n1 = NormOfRow(kept_index[1], kept[1]);
    const size_t larger = n0 > n1 ? 0 : 1;
    const double big = std::max(n0, n1);
    const double small = std::min(n0, n1);
    if (big > small) {
      kept[larger].factor = static_cast<float>(kept[larger].factor * (small / big));
      if (big > kOutlierFactor * small) combined.held_down.push_back(kept_index[larger]);
    }
  }
  TrimmedMeanInto(kept, TrimPerEnd(robust_, kept.size()), static_cast<float>(samples),
                  absl::MakeSpan(sum));
  acc->Assign(std::move(sum), max_abs_ * static_cast<double>(samples), samples, loss,
              contributors_);
  Reset();
  return combined;
}

}  // namespace hips
