#ifndef HIPS_SERVICES_TYPES_TIER_STATUS_H_
#define HIPS_SERVICES_TYPES_TIER_STATUS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "services/types/consistency.h"
#include "services/types/eval_metrics.h"
#include "services/types/payloads.h"

// What HQ and an aggregator report about themselves (GetStatus, /metrics,
// hips status, hips local's summary). The tiers fill these in; the gRPC
// adapters convert them to and from hips.v1 (services/net/proto_convert.h),
// so clients compute on these types, never on protobuf.

namespace hips {

// The open round of a tier and whom it waits for (docs/faults.md, "A round
// that waits says for whom").
struct RoundWait {
  int64_t version = -1;              // the open round's (-1: none open)
  std::vector<std::string> members;  // still awaited, in id order (none: async, or all in)
  double waited_s = 0;               // since the round opened
};

// An evaluation of published weights on the test set.
struct EvalResult {
  int64_t version = 0;
  EvalMetrics metrics;
};

struct ParameterServerStatus {
  int64_t version = 0;
  RoundWait round;  // filled in by status()
  int64_t max_versions = 0;
  int64_t max_samples = 0;
  bool training_done = false;
  double last_loss = 0.0;  // mean training loss of the newest update
  int64_t samples_applied = 0;
  ModeConfig mode;
  int64_t mode_since = 0;
  std::optional<ModeConfig> pending_mode;
  // Aggregates (one per aggregator and round, or per coalesced batch).
  int64_t aggregates_received = 0;
  int64_t aggregate_bytes_received = 0;  // payload, as it travelled
  int64_t aggregates_applied = 0;        // accepted into an update
  int64_t aggregates_duplicate = 0;
  std::map<std::string, int64_t> aggregates_dropped;  // by DropReasonName
  // Accepted, scaled down to HQ's --clip_norm bound.
  int64_t aggregates_clipped = 0;
  // Worker gradients inside those aggregates:
  // received = applied + duplicate + Σ dropped + pending (in an open round).
  int64_t gradients_received = 0;
  int64_t gradients_applied = 0;
  int64_t gradients_duplicate = 0;
  std::map<std::string, int64_t> gradients_dropped;  // by DropReasonName
  int64_t gradients_pending = 0;
  StalenessHistogram staleness;  // of applied gradients
  // The largest number of worker gradients in one applied sync version.
  int64_t max_round_contributors = 0;
  // Membership: aggregators holding a lease, the workers they report, and
  // whether HQ still waits for its --aggregators to join at start.
  std::vector<std::string> live_aggregators;
  std::vector<std::string> live_workers;
  std::vector<MemberInfo> aggregators;  // the live ones, in id order
  bool forming = false;
  int64_t incarnation = 0;
  // The version this HQ resumed from (-1: it started fresh).
  int64_t resumed_from = -1;
  int64_t checkpoints_taken = 0;
  int64_t last_checkpoint_version = -1;
  // Time spent in updates: the mean gradient, the optimizer step and
  // publishing the new weights (on a sync round's critical path).
  double update_seconds = 0.0;
  // Divergence (docs/faults.md): rollbacks so far; where the run diverged
  // and stopped (-1: it did not), and what was non-finite.
  int64_t rollbacks = 0;
  int64_t diverged_version = -1;
  std::string diverged_reason;
};

// GetStatus of HQ: the parameter server's state and the evaluations.
struct HqStatus {
  ParameterServerStatus server;
  // Calls refused before they were served (credentials, identity, a full
  // membership), by reason (docs/security.md).
  std::map<std::string, int64_t> calls_refused;
  std::optional<EvalResult> latest_eval;
  // The evaluation of the final weights, once done.
  std::optional<EvalResult> final_eval;
  // Why evaluating the final weights failed (empty if it did not).
  std::string final_eval_error;
};

// Counters of one aggregator, all monotonic except `gradients_pending`.
//   received = duplicate + Σ dropped + forwarded + pending
struct AggregatorCounters {
  int64_t gradients_received = 0;
  int64_t gradients_accepted = 0;  // summed into a round or batch
  int64_t gradients_duplicate = 0;
  std::map<std::string, int64_t> gradients_dropped;  // by DropReasonName
  // Accepted, scaled down to --clip_norm's bound (bounded influence).
  int64_t gradients_clipped = 0;
  // Accepted, counted with --max_samples_per_push's bound instead of the
  // samples they claimed.
  int64_t gradients_capped = 0;
  // Left out of a robust combination (--robust) as outliers: far from the
  // coordinate-wise median of their round (robust_mean.h).
  int64_t gradients_trimmed = 0;
  // Times a worker was put out for a while (--quarantine_ms).
  int64_t members_quarantined = 0;
  // Inside aggregates HQ answered (HQ accounts for them from there on).
  int64_t gradients_forwarded = 0;
  // Accepted, not yet answered by HQ.
  int64_t gradients_pending = 0;
  int64_t rounds_closed = 0;       // aggregates produced
  int64_t aggregates_refused = 0;  // by HQ
  // Retried gradients (first attempt's outcome unknown) sent on alone.
  int64_t gradients_sent_alone = 0;
  // fedavg with edge rounds: worker deltas applied to this aggregator's
  // copy in an edge round before the last of a version, and acknowledged
  // here (their effect travels in the version's aggregate to HQ), and the
  // edge rounds closed so.
  int64_t gradients_edge_applied = 0;
  int64_t edge_rounds_closed = 0;
  // Payload bytes as they travelled (encoded on a compressed hop): of the
  // gradients that reached the round logic, and of the aggregates sent to
  // HQ (and answered).
  int64_t gradient_bytes_received = 0;
  int64_t aggregate_bytes_sent = 0;
  std::vector<std::string> live_workers;
  std::vector<MemberInfo> workers;  // the live ones, in id order
  bool forming = false;
  RoundWait round;
};

// GetStatus of an aggregator.
struct AggregatorStatus {
  std::string id;
  int64_t version = -1;  // of the newest weights it has (-1: none yet)
  AggregatorCounters counters;
  // Calls refused before they were served, by reason (docs/security.md).
  std::map<std::string, int64_t> calls_refused;
};

}  // namespace hips

#endif  // HIPS_SERVICES_TYPES_TIER_STATUS_H_
