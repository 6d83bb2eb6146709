#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/cli_flags.h"
#include "cli/commands.h"
#include "cli/run_credentials.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/security_flags.h"
#include "services/runtime/training_flags.h"
#include "services/runtime/worker_flags.h"

namespace hips {

std::string OwnDirectory() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, n);
  return path.substr(0, path.rfind('/'));
}

int64_t GlobalBatchFromFlags() {
  const int64_t global_batch = absl::GetFlag(FLAGS_workers) * absl::GetFlag(FLAGS_batch_size);
  if (global_batch <= 0) ExitWithUsageError("--workers and --batch_size must be positive");
  return global_batch;
}

int64_t SampleBudgetFromFlags() {
  const double epochs = absl::GetFlag(FLAGS_epochs);
  if (!(epochs > 0)) ExitWithUsageError("--epochs must be positive");
  absl::StatusOr<int64_t> examples = CountTrainingExamples(DataOptionsFromFlagsOrExit());
  if (!examples.ok()) ExitWithUsageError(std::string(examples.status().message()));
  return std::max<int64_t>(1, std::llround(epochs * (*examples)));
}

int FinishRun(const RunSummary& summary) {
  const std::string json = absl::GetFlag(FLAGS_summary_json);
  if (!json.empty()) {
    if (absl::Status s = WriteSummaryJson(json, summary); !s.ok()) {
      std::fprintf(stderr, "hips: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  if (summary.accounting.has_value()) {
    std::printf("%s\n", DescribeAccounting(*summary.accounting).c_str());
  }
  if (summary.rollbacks > 0) {
    std::printf("rollbacks: %lld (docs/faults.md, \"Divergence\")\n",
                static_cast<long long>(summary.rollbacks));
  }
  std::printf("%s\n", FinalLine(summary).c_str());
  if (summary.diverged.has_value()) {
    // The run ended, but not as asked: the last line says why.
    std::printf("%s\n", DescribeDivergence(*summary.diverged).c_str());
    std::fflush(stdout);
    return kExitDiverged;
  }
  std::fflush(stdout);
  return 0;
}

ClientCredentials OperatorCredentialsOrExit(bool admin, const std::string& hq) {
  absl::StatusOr<ClientCredentials> credentials = OperatorCredentials(
      SecurityOptionsFromFlagsOrExit(), absl::GetFlag(FLAGS_run_dir), admin, hq);
  if (!credentials.ok()) ExitWithUsageError(std::string(credentials.status().message()));
  return *std::move(credentials);
}

// The checkpoint `path` names: the file itself, or the newest
// checkpoint-<version>.pt of a directory (their names sort by version).
absl::StatusOr<std::string> CheckpointFile(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_directory(path, error)) return path;
  std::string newest;
  for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, "checkpoint-") && absl::EndsWith(name, ".pt") &&
        name > std::filesystem::path(newest).filename().string()) {
      newest = entry.path().string();
    }
  }
  if (newest.empty()) return absl::NotFoundError(absl::StrCat(path, " holds no checkpoint"));
  return newest;
}

}  // namespace hips
