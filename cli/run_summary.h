#ifndef HIPS_CLI_RUN_SUMMARY_H_
#define HIPS_CLI_RUN_SUMMARY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "services/types/divergence.h"
#include "services/types/eval_metrics.h"

namespace hips {

// What `hips local` and `hips train --monolith` report at the end of a run.
struct RunSummary {
  int64_t version = 0;
  double accuracy = 0.0;  // fraction in [0, 1]
  double f1 = 0.0;        // macro-F1, fraction in [0, 1]
  // --loss=mse: RMSE and R² instead of accuracy and F1.
  bool regression = false;
  double rmse = 0.0;
  double r2 = 0.0;
  void SetMetrics(const EvalMetrics& m) {
    accuracy = m.accuracy;
    f1 = m.macro_f1;
    regression = m.regression;
    rmse = m.rmse;
    r2 = m.r2;
  }
  int64_t samples = 0;
  double seconds = 0.0;
  // Worker gradients as HQ accounted for them (hips local only):
  // received = applied + duplicate + Σ dropped + pending.
  struct Accounting {
    std::string mode;  // at the end of the run
    int64_t received = 0;
    int64_t applied = 0;
    int64_t duplicate = 0;
    int64_t pending = 0;
    std::map<std::string, int64_t> dropped;  // by reason
    std::vector<int64_t> staleness_counts;   // of applied gradients
    int64_t max_staleness = 0;
    // Payload bytes of the gradient hops, as they travelled (encoded on a
    // compressed hop): into the aggregators, and into HQ.
    int64_t worker_to_aggregator_bytes = 0;
    int64_t aggregator_to_hq_bytes = 0;
    // Each aggregator's side: received = duplicate + Σ dropped + forwarded +
    // pending + edge_applied (fedavg's edge rounds).
    struct Aggregator {
      std::string id;
      int64_t received = 0;
      int64_t duplicate = 0;
      int64_t forwarded = 0;
      int64_t pending = 0;
      int64_t edge_applied = 0;
      // Accepted and scaled down to --clip_norm's bound (not a part of the
      // sum above: a clipped gradient is forwarded or pending).
      int64_t clipped = 0;
      // Counted with --max_samples_per_push's bound; left out of a robust
      // combination as outliers (both also forwarded or pending).
      int64_t capped = 0;
      int64_t trimmed = 0;
      // Times a worker was put out for a while (--quarantine_ms).
      int64_t quarantined = 0;
      std::map<std::string, int64_t> dropped;
      // Calls it refused before serving them, by reason (docs/security.md).
      std::map<std::string, int64_t> calls_refused;
    };
    std::vector<Aggregator> aggregators;
  };
  std::optional<Accounting> accounting;
  // hips local: children restarted after they died, by name. Counters are
  // per process: a restarted child (HQ from its checkpoint) counts afresh.
  std::map<std::string, int64_t> restarts;
  // Divergence (docs/faults.md): HQ's rollbacks, and where the run
  // diverged if it stopped for it.
  int64_t rollbacks = 0;
  std::optional<Divergence> diverged;
};

// "final: version=V accuracy=A f1=F samples=S seconds=T"
std::string FinalLine(const RunSummary& s);
// The accounting lines hips local prints before it: every gradient by what
// became of it at HQ, then per aggregator.
std::string DescribeAccounting(const RunSummary::Accounting& a);

// The same keys as a JSON object (WriteSummaryJson writes it to `path`); with
// accounting also "mode", "gradients" {"received", "applied", "duplicate",
// "pending", "dropped": {reason: n}}, "staleness_counts", "max_staleness",
// "aggregators": [{"id", "gradients_received", "gradients_duplicate",
// "gradients_forwarded", "gradients_pending", "gradients_edge_applied",
// "gradients_clipped", "gradients_capped", "gradients_trimmed", "members_quarantined",
// "gradients_dropped": {...}, "calls_refused": {...}}],
// "bytes" {"worker_to_aggregator", "aggregator_to_hq"} and "restarts":
// {name: n}. Always "rollbacks" and "diverged" ({"version", "reason"}, or
// null).
nlohmann::json SummaryJson(const RunSummary& s);
absl::Status WriteSummaryJson(const std::string& path, const RunSummary& s);

}  // namespace hips

#endif  // HIPS_CLI_RUN_SUMMARY_H_
