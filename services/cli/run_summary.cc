#include "services/cli/run_summary.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace hips {

std::string FinalLine(const RunSummary& s) {
  return absl::StrFormat("final: version=%d accuracy=%.4f f1=%.4f samples=%d seconds=%.1f",
                         s.version, s.accuracy, s.f1, s.samples, s.seconds);
}

absl::Status WriteSummaryJson(const std::string& path, const RunSummary& s) {
  std::ofstream out(path, std::ios::trunc);
  out << absl::StrFormat(
      "{\"version\": %d, \"accuracy\": %.6f, \"f1\": %.6f, \"samples\": %d, \"seconds\": %.3f}\n",
      s.version, s.accuracy, s.f1, s.samples, s.seconds);
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

}  // namespace hips
