// summation_vs_memory: how fast an aggregator adds one worker's gradient
// into its sum, against a plain a += b over the same buffers (the memory
// bandwidth this machine gives one core for that access pattern).
// --robust=median|trimmed_mean: robust_vs_sum instead, the seconds of a
// sync round of --contributions gradients from the first add to the closed
// round's sum, robust against the plain weighted sum.
// Prints one JSON object: {"name", "value", "reference", "ratio", "unit"}.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "services/numeric/float_kernels.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/numeric/parallel.h"
#include "services/numeric/robust_mean.h"
#include "services/rounds/sync_round.h"

ABSL_FLAG(int64_t, floats, 10'000'000, "Floats per gradient (K).");
ABSL_FLAG(int, repeats, 10, "Timed repetitions; the best one counts.");
ABSL_FLAG(int, threads, 1, "Summation threads (as hips-aggregator --sum_threads).");
ABSL_FLAG(std::string, robust, "", "robust_vs_sum: the combination (median, trimmed_mean).");
ABSL_FLAG(int, contributions, 5, "robust_vs_sum: gradients per round.");

namespace {

// Bytes one accumulation moves per float: read the sum, read the gradient,
// write the sum.
constexpr double kBytesPerFloat = 12.0;

template <typename Fn>
double BestGigabytesPerSecond(int64_t floats, int repeats, Fn fn) {
  absl::Duration best = absl::InfiniteDuration();
  for (int r = 0; r < repeats; ++r) {
    const absl::Time start = absl::Now();
    fn();
    best = std::min(best, absl::Now() - start);
  }
  return kBytesPerFloat * static_cast<double>(floats) / absl::ToDoubleSeconds(best) / 1e9;
}

// The best seconds of a sync round of `k` gradients of `floats` floats
// combined by `robust` (kNone: summed).
double BestRoundSeconds(int64_t floats, int k, int repeats, hips::RobustMean robust,
                        int* failures) {
  std::vector<std::vector<float>> gradients(k, std::vector<float>(floats));
  for (int c = 0; c < k; ++c) {
    for (int64_t i = 0; i < floats; ++i) {
      gradients[c][i] = 1e-3f * static_cast<float>((i * (c + 3)) % 1000) - 0.5f;
    }
  }
  const std::vector<std::vector<float>> originals = gradients;
  // What a receiver sums per chunk as it arrives (robust_mean.h, rule 3
  // reads it), on the receive path, not the round's: sync_round measures it.
  std::vector<double> squares(k);
  for (int c = 0; c < k; ++c) {
    squares[c] = hips::SquaredNormOfRun(reinterpret_cast<const char*>(gradients[c].data()),
                                        gradients[c].size());
  }
  hips::SyncRound round(floats, k, k, absl::InfiniteDuration(), robust);
  absl::Duration best = absl::InfiniteDuration();
  for (int r = 0; r < repeats; ++r) {
    round.Open(r);
    const absl::Time start = absl::Now();
    for (int c = 0; c < k; ++c) {
      hips::Contribution contribution;
      contribution.sender = "w" + std::to_string(c);
      contribution.version = r;
      contribution.samples = 64;
      contribution.scale = 64.0f;
      contribution.values = gradients[c];
      // As a receiver hands them over: their buffers may be taken.
      contribution.values.adoptable = &gradients[c];
      contribution.values.squared_norm = squares[c];
      hips::DropReason reason;
      if (!round.Add(contribution, &reason).ok()) ++*failures;
    }
    best = std::min(best, absl::Now() - start);
    if (round.state() != hips::SyncRound::State::kClosed ||
        round.accumulator().total_samples() != 64 * k) {
      ++*failures;
    }
    // (What the round handed back in exchange, as the next gradients.)
    for (int c = 0; c < k; ++c) gradients[c].assign(originals[c].begin(), originals[c].end());
  }
  return absl::ToDoubleSeconds(best);
}

int RobustVsSum(int64_t floats, int repeats) {
  absl::StatusOr<hips::RobustMean::Kind> kind = hips::ParseRobust(absl::GetFlag(FLAGS_robust));
  const int k = absl::GetFlag(FLAGS_contributions);
  if (!kind.ok() || *kind == hips::RobustMean::Kind::kNone || k < 1) {
    std::fprintf(stderr, "--robust must be median or trimmed_mean, --contributions positive\n");
    return 2;
  }
  int failures = 0;
  const hips::RobustMean robust{*kind, hips::RobustMean::kDefaultTrimFraction};
  const double value = BestRoundSeconds(floats, k, repeats, robust, &failures);
  const double reference = BestRoundSeconds(floats, k, repeats, hips::RobustMean(), &failures);
  if (failures > 0) {
    std::fprintf(stderr, "%d rounds failed\n", failures);
    return 1;
  }
  std::printf(
      "{\"name\": \"robust_vs_sum\", \"robust\": \"%s\", \"value\": %.4f, "
      "\"reference\": %.4f, \"ratio\": %.3f, \"unit\": \"s\", \"floats\": %lld, "
      "\"contributions\": %d, \"trim_per_end\": %zu, \"threads\": %d}\n",
      hips::RobustName(robust.kind).c_str(), value, reference, value / reference,
      static_cast<long long>(floats), k, hips::TrimPerEnd(robust, k), hips::SummationThreads());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  hips::SetSummationThreads(absl::GetFlag(FLAGS_threads));
  const int64_t k = absl::GetFlag(FLAGS_floats);
  const int repeats = absl::GetFlag(FLAGS_repeats);
  if (k <= 0 || repeats <= 0) {
    std::fprintf(stderr, "--floats and --repeats must be positive\n");
    return 2;
  }
  if (!absl::GetFlag(FLAGS_robust).empty()) return RobustVsSum(k, repeats);
  std::vector<float> gradient(k);
  for (int64_t i = 0; i < k; ++i) gradient[i] = 1e-3f * static_cast<float>(i % 1000);
  std::vector<float> sum(k, 0.0f);

  const double reference = BestGigabytesPerSecond(k, repeats, [&] {
    float* __restrict a = sum.data();
    const float* __restrict b = gradient.data();
    for (int64_t i = 0; i < k; ++i) a[i] += b[i];
  });
  // What an aggregator does with a worker's gradient: validate its header,
  // then add it, sample-weighted, into the round's sum (the accumulator
  // checks the values as it adds them).
  hips::GradientAccumulator acc(k);
  int failures = 0;
  const double value = BestGigabytesPerSecond(k, repeats, [&] {
    hips::Contribution c;
    c.sender = "w0";
    c.version = 0;
    c.samples = 64;
    c.loss_sum = 1.0;
    c.scale = 64.0f;
    c.values = gradient;
    if (!hips::ValidateContribution(c, k, /*check_values=*/false).ok()) ++failures;
    if (!acc.Add(c.values, c.scale, c.samples, c.loss_sum, 1).ok()) ++failures;
  });
  if (failures > 0) {
    std::fprintf(stderr, "%d accumulations failed\n", failures);
    return 1;
  }
  // Keeps the reference loop's result observable.
  if (sum[k / 2] < 0) std::fprintf(stderr, "impossible\n");
  std::printf(
      "{\"name\": \"summation_vs_memory\", \"value\": %.3f, \"reference\": %.3f, "
      "\"ratio\": %.3f, \"unit\": \"GB/s\", \"floats\": %lld, \"threads\": %d}\n",
      value, reference, value / reference, static_cast<long long>(k), hips::SummationThreads());
  return 0;
}
