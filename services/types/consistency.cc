#include "services/types/consistency.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace hips {

absl::string_view ModeName(Mode mode) {
  switch (mode) {
    case Mode::kSync:
      return "sync";
    case Mode::kAsync:
      return "async";
    case Mode::kSsp:
      return "ssp";
    case Mode::kFedAvg:
      return "fedavg";
  }
  return "unknown";
}

absl::StatusOr<Mode> ParseMode(absl::string_view name) {
  for (Mode m : {Mode::kSync, Mode::kAsync, Mode::kSsp, Mode::kFedAvg}) {
    if (name == ModeName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown mode '", name, "' (want sync, async, ssp or fedavg)"));
}

absl::string_view StalenessWeightingName(StalenessWeighting w) {
  return w == StalenessWeighting::kPolynomial ? "polynomial" : "constant";
}

absl::StatusOr<StalenessWeighting> ParseStalenessWeighting(absl::string_view name) {
  for (StalenessWeighting w : {StalenessWeighting::kConstant, StalenessWeighting::kPolynomial}) {
    if (name == StalenessWeightingName(w)) return w;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown staleness weighting '", name, "' (want constant or polynomial)"));
}

double StalenessWeight(const ModeConfig& mode, int64_t tau) {
  if (mode.staleness_weighting == StalenessWeighting::kConstant) return 1.0;
  return std::pow(1.0 + static_cast<double>(std::max<int64_t>(tau, 0)), -mode.staleness_exponent);
}

std::string DescribeMode(const ModeConfig& c) {
  if (c.mode == Mode::kSsp) return absl::StrCat("ssp(", c.staleness, ")");
  std::vector<std::string> parts;
  if (c.mode == Mode::kFedAvg) {
    parts.push_back(absl::StrCat("H=", c.local_steps));
    if (c.participation < 1.0) parts.push_back(absl::StrCat("F=", c.participation));
    if (c.edge_rounds > 1) parts.push_back(absl::StrCat("E=", c.edge_rounds));
    if (c.proximal_mu > 0) parts.push_back(absl::StrCat("mu=", c.proximal_mu));
  }
  if (c.hq_buffer > 0) {
    parts.push_back(absl::StrCat("B=", c.hq_buffer));
    if (c.staleness_weighting == StalenessWeighting::kPolynomial) {
      parts.push_back(absl::StrCat("poly=", c.staleness_exponent));
    }
  }
  if (parts.empty()) return std::string(ModeName(c.mode));
  return absl::StrCat(ModeName(c.mode), "(", absl::StrJoin(parts, ","), ")");
}

absl::Status ValidateModeConfig(const ModeConfig& c) {
  if (c.mode != Mode::kSsp && c.staleness != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a staleness bound only applies to ssp, not ", ModeName(c.mode)));
  }
  if (c.staleness < 0 || c.staleness > kMaxStaleness) {
    return absl::InvalidArgumentError(
        absl::StrCat("staleness must be in [0, ", kMaxStaleness, "], got ", c.staleness));
  }
  if (c.mode != Mode::kFedAvg &&
      (c.local_steps != 1 || c.participation != 1.0 || c.edge_rounds != 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "local steps, participation and edge rounds only apply to fedavg, not ", ModeName(c.mode)));
  }
  if (c.local_steps < 1 || c.local_steps > kMaxLocalSteps) {
    return absl::InvalidArgumentError(
        absl::StrCat("local steps must be in [1, ", kMaxLocalSteps, "], got ", c.local_steps));
  }
  if (!(c.participation > 0.0 && c.participation <= 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("participation must be in (0, 1], got ", c.participation));
  }
  if (c.edge_rounds < 1 || c.edge_rounds > kMaxEdgeRounds) {
    return absl::InvalidArgumentError(
        absl::StrCat("edge rounds must be in [1, ", kMaxEdgeRounds, "], got ", c.edge_rounds));
  }
  if (c.mode != Mode::kFedAvg && c.proximal_mu != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("a proximal term only applies to fedavg, not ", ModeName(c.mode)));
  }
  if (!(c.proximal_mu >= 0 && c.proximal_mu <= kMaxProximalMu)) {
    return absl::InvalidArgumentError(
        absl::StrCat("proximal mu must be in [0, ", kMaxProximalMu, "], got ", c.proximal_mu));
  }
  if (!UsesRounds(c.mode) && c.hq_buffer != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "an HQ buffer only applies to sync and fedavg (async and ssp apply every aggregate as "
        "it arrives), not ",
        ModeName(c.mode)));
  }
  if (c.hq_buffer < 0 || c.hq_buffer > kMaxHqBuffer) {
    return absl::InvalidArgumentError(
        absl::StrCat("HQ buffer must be in [0, ", kMaxHqBuffer, "], got ", c.hq_buffer));
  }
  const bool polynomial = c.staleness_weighting == StalenessWeighting::kPolynomial;
  if (polynomial && c.hq_buffer == 0) {
    return absl::InvalidArgumentError(
        "a staleness weighting only applies to HQ's buffered rounds (an HQ buffer > 0)");
  }
  if (polynomial ? !(c.staleness_exponent > 0 && c.staleness_exponent <= kMaxStalenessExponent)
                 : c.staleness_exponent != 0.5) {
    return absl::InvalidArgumentError(
        polynomial ? absl::StrCat("staleness exponent must be in (0, ", kMaxStalenessExponent,
                                  "], got ", c.staleness_exponent)
                   : std::string("a staleness exponent only applies to the polynomial weighting"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModeConfig> MakeModeConfig(absl::string_view mode, const ModeKnobs& k) {
  absl::StatusOr<Mode> m = ParseMode(mode);
  if (!m.ok()) return m.status();
  ModeConfig c;
  c.mode = *m;
  c.staleness = *m == Mode::kSsp ? k.staleness : 0;
  if (*m == Mode::kFedAvg) {
    c.local_steps = k.local_steps;
    c.participation = k.participation;
    c.edge_rounds = k.edge_rounds;
    c.proximal_mu = k.proximal_mu;
  }
  if (UsesRounds(*m)) {
    c.hq_buffer = k.hq_buffer;
    if (k.hq_buffer > 0) {
      c.staleness_weighting = k.staleness_weighting;
      if (k.staleness_weighting == StalenessWeighting::kPolynomial) {
        c.staleness_exponent = k.staleness_exponent;
      }
    }
  }
  if (absl::Status s = ValidateModeConfig(c); !s.ok()) return s;
  return c;
}

absl::StatusOr<ModeConfig> MakeModeConfig(absl::string_view mode, int64_t staleness,
                                          int64_t local_steps, double participation,
                                          int64_t edge_rounds) {
  ModeKnobs k;
  k.staleness = staleness;
  k.local_steps = local_steps;
  k.participation = participation;
  k.edge_rounds = edge_rounds;
  return MakeModeConfig(mode, k);
}

absl::string_view StalenessScalingName(StalenessScaling s) {
  switch (s) {
    case StalenessScaling::kNone:
      return "none";
    case StalenessScaling::kInverse:
      return "inverse";
    case StalenessScaling::kSqrt:
      return "sqrt";
  }
  return "unknown";
}

absl::StatusOr<StalenessScaling> ParseStalenessScaling(absl::string_view name) {
  for (StalenessScaling s :
       {StalenessScaling::kNone, StalenessScaling::kInverse, StalenessScaling::kSqrt}) {
    if (name == StalenessScalingName(s)) return s;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown staleness scaling '", name, "' (want none, inverse or sqrt)"));
}

double StalenessFactor(StalenessScaling s, int64_t tau) {
  switch (s) {
    case StalenessScaling::kNone:
      return 1.0;
    case StalenessScaling::kInverse:
      return 1.0 / (1.0 + static_cast<double>(tau));
    case StalenessScaling::kSqrt:
      return 1.0 / std::sqrt(1.0 + static_cast<double>(tau));
  }
  return 1.0;
}

absl::StatusOr<StalenessHistogram> StalenessHistogram::FromCounts(
    const std::vector<int64_t>& counts, int64_t max) {
  if (counts.size() > static_cast<size_t>(kBuckets)) {
    return absl::InvalidArgumentError(
        absl::StrCat(counts.size(), " staleness buckets; at most ", kBuckets));
  }
  if (max < 0 || std::any_of(counts.begin(), counts.end(), [](int64_t c) { return c < 0; })) {
    return absl::InvalidArgumentError("negative staleness count or maximum");
  }
  StalenessHistogram h;
  std::copy(counts.begin(), counts.end(), h.counts_.begin());
  h.max_ = max;
  return h;
}

void StalenessHistogram::Record(int64_t staleness, int64_t gradients) {
  const int64_t bucket = std::clamp<int64_t>(staleness, 0, kBuckets - 1);
  counts_[bucket] += gradients;
  max_ = std::max(max_, staleness);
}

int64_t StalenessHistogram::total() const {
  return std::accumulate(counts_.begin(), counts_.end(), int64_t{0});
}

}  // namespace hips
