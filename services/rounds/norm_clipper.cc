#include "services/rounds/norm_clipper.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/escaping.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "services/numeric/compression.h"

namespace hips {

absl::StatusOr<ClipNorm> ParseRunningBound(absl::string_view text, absl::string_view flag,
                                           double default_multiple) {
  ClipNorm clip;
  clip.multiple = default_multiple;
  if (text == "auto") return clip;
  if (absl::ConsumePrefix(&text, "auto:")) {
    double multiple = 0;
    if (!absl::SimpleAtod(text, &multiple) || !(multiple > 0 && multiple <= 100)) {
      return absl::InvalidArgumentError(absl::StrCat(flag,
                                                     "=auto:K takes a multiple K in (0, 100], got \"",
                                                     absl::CHexEscape(text), "\""));
    }
    clip.multiple = multiple;
    return clip;
  }
  if (text == "off") {
    clip.kind = ClipNorm::Kind::kOff;
    return clip;
  }
  double bound = 0;
  if (!absl::SimpleAtod(text, &bound) || !std::isfinite(bound) || bound < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, " must be auto, auto:K, off, or a bound >= 0 (0: off), got \"",
                     absl::CHexEscape(text), "\""));
  }
  clip.kind = bound == 0 ? ClipNorm::Kind::kOff : ClipNorm::Kind::kFixed;
  clip.bound = bound;
  return clip;
}

absl::StatusOr<ClipNorm> ParseClipNorm(absl::string_view text) {
  return ParseRunningBound(text, "--clip_norm", ClipNorm::kDefaultMultiple);
}

std::string ClipNormName(const ClipNorm& clip, double default_multiple) {
  switch (clip.kind) {
    case ClipNorm::Kind::kOff:
      return "off";
    case ClipNorm::Kind::kFixed:
      return absl::StrCat(clip.bound);
    case ClipNorm::Kind::kAuto:
      break;
  }
  if (clip.multiple == default_multiple) return "auto";
  return absl::StrCat("auto:", clip.multiple);
}

double NormClipper::bound() const {
  switch (clip_.kind) {
    case ClipNorm::Kind::kOff:
      return 0;
    case ClipNorm::Kind::kFixed:
      return clip_.bound;
    case ClipNorm::Kind::kAuto:
      break;
  }
  if (static_cast<int>(recent_.size()) < kWarmup) return 0;
  std::vector<double> sorted = recent_;
  const auto middle = sorted.begin() + static_cast<std::ptrdiff_t>(sorted.size() / 2);
  std::nth_element(sorted.begin(), middle, sorted.end());
  return clip_.multiple * *middle;
}

double NormClipper::Factor(double norm) {
  if (!std::isfinite(norm)) return 1.0;
  const double limit = bound();  // (of the norms before this one)
  if (clip_.kind == ClipNorm::Kind::kAuto) {
    if (static_cast<int>(recent_.size()) < kWindow) {
      recent_.push_back(norm);
    } else {
      recent_[next_] = norm;
      next_ = (next_ + 1) % kWindow;
    }
  }
  if (limit <= 0 || norm <= limit) return 1.0;
  return limit / norm;
}

std::optional<double> ClipContribution(NormClipper* clipper, Contribution* c) {
  if (clipper->clip().kind == ClipNorm::Kind::kOff || c->samples <= 0) return std::nullopt;
  const double norm =
      std::abs(c->scale) * std::sqrt(SquaredNorm(c->values)) / static_cast<double>(c->samples);
  const double factor = clipper->Factor(norm);
  if (factor >= 1.0) return std::nullopt;
  c->scale = static_cast<float>(c->scale * factor);
  return norm;
}

}  // namespace hips
