#include "services/numeric/parallel.h"

namespace hips {
namespace {
std::atomic<int> summation_threads{1};
}  // namespace

void SetSummationThreads(int threads) { summation_threads.store(std::max(1, threads)); }
int SummationThreads() { return summation_threads.load(); }

}  // namespace hips
