#ifndef HIPS_HQ_EVAL_LOOP_H_
#define HIPS_HQ_EVAL_LOOP_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "services/types/eval_metrics.h"
#include "services/types/payloads.h"
#include "services/types/tier_status.h"

namespace hips {

// Evaluates published weights on a thread of its own, so that training never
// waits for evaluation: every `every`-th version and the final one (training
// done). When evaluation falls behind, only the newest offered snapshot is
// evaluated; the final one always is. Thread-safe; Shutdown (idempotent, also
// the destructor) joins the thread.
class EvalLoop {
 public:
  using EvaluateFn = std::function<absl::StatusOr<EvalMetrics>(absl::Span<const float> weights)>;

  // `evaluate` is only ever called from the loop's thread. `every` <= 0
  // evaluates only the final weights.
  EvalLoop(EvaluateFn evaluate, int64_t every);
  ~EvalLoop();

  void Offer(std::shared_ptr<const WeightsSnapshot> snapshot);

  std::optional<EvalResult> latest() const;
  // The evaluation of the final weights, once done.
  std::optional<EvalResult> final_result() const;
  // Why evaluating the final weights failed (OK if it did not).
  absl::Status final_error() const;

  void Shutdown();

 private:
  void Run();

  const EvaluateFn evaluate_;
  const int64_t every_;

  mutable absl::Mutex mu_;
  std::shared_ptr<const WeightsSnapshot> pending_ ABSL_GUARDED_BY(mu_);
  std::optional<EvalResult> latest_ ABSL_GUARDED_BY(mu_);
  std::optional<EvalResult> final_ ABSL_GUARDED_BY(mu_);
  absl::Status final_error_ ABSL_GUARDED_BY(mu_);
  bool shutdown_ ABSL_GUARDED_BY(mu_) = false;

  std::once_flag shutdown_once_;
  std::thread thread_;
};

}  // namespace hips

#endif  // HIPS_HQ_EVAL_LOOP_H_
