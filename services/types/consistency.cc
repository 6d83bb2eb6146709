#include "services/types/consistency.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"

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

std::string DescribeMode(const ModeConfig& c) {
  if (c.mode == Mode::kSsp) return absl::StrCat("ssp(", c.staleness, ")");
  if (c.mode == Mode::kFedAvg) {
    std::string out = absl::StrCat("fedavg(H=", c.local_steps);
    if (c.participation < 1.0) absl::StrAppend(&out, ",F=", c.participation);
    if (c.edge_rounds > 1) absl::StrAppend(&out, ",E=", c.edge_rounds);
    return absl::StrCat(out, ")");
  }
  return std::string(ModeName(c.mode));
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
  return absl::OkStatus();
}

absl::StatusOr<ModeConfig> MakeModeConfig(absl::string_view mode, int64_t staleness,
                                          int64_t local_steps, double participation,
                                          int64_t edge_rounds) {
  absl::StatusOr<Mode> m = ParseMode(mode);
  if (!m.ok()) return m.status();
  ModeConfig c;
  c.mode = *m;
  c.staleness = *m == Mode::kSsp ? staleness : 0;
  if (*m == Mode::kFedAvg) {
    c.local_steps = local_steps;
    c.participation = participation;
    c.edge_rounds = edge_rounds;
  }
  if (absl::Status s = ValidateModeConfig(c); !s.ok()) return s;
  return c;
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
