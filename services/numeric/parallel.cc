#include "services/numeric/parallel.h"

#include "absl/strings/str_cat.h"

namespace hips {
namespace {
std::atomic<int> summation_threads{1};
}  // namespace

void SetSummationThreads(int threads) { summation_threads.store(std::max(1, threads)); }
int SummationThreads() { return summation_threads.load(); }

absl::Status ValidateSummationThreads(int threads) {
  if (threads >= 1 && threads <= 256) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("--sum_threads must be in [1, 256], got ", threads));
}

}  // namespace hips
