#ifndef HIPS_SERVICES_CLI_RUN_SUMMARY_H_
#define HIPS_SERVICES_CLI_RUN_SUMMARY_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace hips {

// What `hips local` and `hips train --monolith` report at the end of a run.
struct RunSummary {
  int64_t version = 0;
  double accuracy = 0.0;  // fraction in [0, 1]
  double f1 = 0.0;        // macro-F1, fraction in [0, 1]
  int64_t samples = 0;
  double seconds = 0.0;
};

// "final: version=V accuracy=A f1=F samples=S seconds=T"
std::string FinalLine(const RunSummary& s);

// The same keys as a JSON object, written to `path`.
absl::Status WriteSummaryJson(const std::string& path, const RunSummary& s);

}  // namespace hips

#endif  // HIPS_SERVICES_CLI_RUN_SUMMARY_H_
