#include "hq/hq_metrics.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "services/metrics/round_metrics.h"

namespace hips {

namespace {

// Versions, samples, loss, the mode and its shape.
void CollectTraining(const ParameterServerStatus& s, MetricFamilies* out) {
  out->Gauge("hips_version", "Newest published version of the weights", s.version);
  out->Counter("hips_versions_total",
               "Versions published by this HQ process (optimizer updates; in sync, rounds)",
               s.version - std::max<int64_t>(0, s.resumed_from));
  out->Counter("hips_samples_applied_total", "Training examples in applied updates",
               s.samples_applied);
  out->Counter("hips_update_seconds_total",
               "Time spent in updates: mean gradient, optimizer step, publishing the weights "
               "(divide by hips_versions_total for the time per update)",
               s.update_seconds);
  out->Gauge("hips_training_done", "1 once the training budget is reached", s.training_done);
  out->Gauge("hips_training_loss", "Mean training loss of the newest update", s.last_loss);
  out->Gauge("hips_diverged",
             "1 once training stopped because it diverged (--on_divergence=stop, or no "
             "rollback left): see hips status",
             s.diverged_version >= 0 ? 1 : 0);
  out->Counter(
      "hips_rollbacks_total",
      "Rollbacks to the last healthy weights after a divergence (--on_divergence=rollback)",
      s.rollbacks);
  for (const char* mode : {"sync", "async", "ssp", "fedavg"}) {
    out->Gauge("hips_mode", "1 for the consistency mode HQ trains in",
               ModeName(s.mode.mode) == mode ? 1 : 0, {{"mode", mode}});
  }
  out->Gauge("hips_ssp_staleness_bound", "ssp: the largest staleness applied (versions)",
             s.mode.staleness);
  out->Gauge("hips_fedavg_local_steps", "fedavg: local SGD steps per round (1 in other modes)",
             s.mode.local_steps);
  out->Gauge("hips_fedavg_participation",
             "fedavg: fraction of the live workers drawn per round (1 in other modes)",
             s.mode.participation);
  out->Gauge("hips_fedavg_edge_rounds",
             "fedavg: rounds each aggregator runs on its own copy per version (1 in other modes)",
             s.mode.edge_rounds);
  out->Gauge("hips_fedavg_proximal_mu", "fedavg: FedProx's mu (0: plain fedavg, other modes)",
             s.mode.proximal_mu);
  out->Gauge("hips_hq_buffer",
             "sync/fedavg: MDC aggregates HQ steps on once in (--hq_buffer; 0: HQ's rounds wait "
             "for every live MDC)",
             static_cast<double>(s.mode.hq_buffer));
}

// Every gradient and aggregate by what became of it, and their staleness.
void CollectAccounting(const ParameterServerStatus& s, MetricFamilies* out) {
  out->Counter("hips_gradients_received_total", "Worker gradients received (inside aggregates)",
               s.gradients_received);
  out->Counter("hips_gradients_applied_total", "Worker gradients applied", s.gradients_applied);
  out->Counter("hips_gradients_duplicate_total",
               "Worker gradients received again and not applied again", s.gradients_duplicate);
  out->Counters("hips_gradients_dropped_total", "Worker gradients dropped, by reason", "reason",
                AllDropReasonNames(), s.gradients_dropped);
  out->Gauge("hips_gradients_pending", "Worker gradients in an open sync round",
             s.gradients_pending);
  out->Counter("hips_aggregates_received_total", "Aggregates received", s.aggregates_received);
  out->Counter("hips_aggregate_bytes_received_total",
               "Payload bytes of aggregates as they travelled (encoded if compressed)",
               s.aggregate_bytes_received);
  out->Counter("hips_aggregates_applied_total", "Aggregates accepted into an update",
               s.aggregates_applied);
  out->Counter("hips_contributions_clipped_total",
               "Aggregates scaled down to HQ's --clip_norm bound before they were applied",
               s.aggregates_clipped);
}

// Staleness: bucket t holds gradients applied t versions after the version
// they were computed on; the last bucket also holds everything staler.
void CollectStaleness(const StalenessHistogram& staleness, MetricFamilies* out) {
  const std::vector<int64_t>& counts = staleness.counts();
  std::vector<double> bounds;
  std::vector<int64_t> within;
  double sum = 0;
  for (size_t t = 0; t + 1 < counts.size(); ++t) {
    bounds.push_back(static_cast<double>(t));
    within.push_back(counts[t]);
    sum += static_cast<double>(t) * static_cast<double>(counts[t]);
  }
  const int64_t beyond = counts.empty() ? 0 : counts.back();
  sum += static_cast<double>(counts.size() - 1) * static_cast<double>(beyond);
  out->Histogram("hips_gradient_staleness_versions",
                 "Staleness of applied gradients (versions between computed-on and applied-at)",
                 bounds, within, beyond, sum);
  out->Gauge("hips_max_staleness_versions", "Largest staleness of an applied gradient",
             staleness.max());
}

// Members, evaluations and checkpoints.
void CollectState(const ParameterServerStatus& s, const EvalLoop& eval,
                  const Checkpointer* checkpointer, MetricFamilies* out) {
  out->Gauge("hips_max_round_contributors", "Most worker gradients applied in one sync version",
             s.max_round_contributors);
  out->Gauge("hips_live_members", "Members holding a lease here, by kind",
             static_cast<double>(s.live_aggregators.size()), {{"kind", "aggregator"}});
  out->Gauge("hips_live_members", "Members holding a lease here, by kind",
             static_cast<double>(s.live_workers.size()), {{"kind", "worker"}});
  out->Gauge("hips_forming", "1 while HQ waits for its --aggregators to join at start", s.forming);
  CollectRoundWait(s.round, out);
  if (std::optional<EvalResult> e = eval.latest(); e.has_value() && e->metrics.regression) {
    out->Gauge("hips_eval_rmse", "Test-set RMSE of the newest evaluated version (--loss=mse)",
               e->metrics.rmse);
    out->Gauge("hips_eval_r2", "Test-set R² of the newest evaluated version (--loss=mse)",
               e->metrics.r2);
    out->Gauge("hips_eval_version", "Version of the newest evaluation", e->version);
  } else if (e.has_value()) {
    out->Gauge("hips_eval_accuracy", "Test-set accuracy of the newest evaluated version (0-1)",
               e->metrics.accuracy);
    out->Gauge("hips_eval_f1", "Test-set macro-F1 of the newest evaluated version (0-1)",
               e->metrics.macro_f1);
    out->Gauge("hips_eval_version", "Version of the newest evaluation", e->version);
  }
  out->Gauge("hips_resumed_from_version",
             "Version this HQ resumed from (its checkpoint); -1: started fresh", s.resumed_from);
  out->Counter("hips_checkpoints_taken_total", "Checkpoints handed to the writer",
               s.checkpoints_taken);
  if (checkpointer != nullptr) {
    const Checkpointer::Stats c = checkpointer->stats();
    out->Counter("hips_checkpoints_written_total", "Checkpoints on disk (fsynced)", c.written);
    out->Counter("hips_checkpoint_failures_total", "Checkpoints that could not be written",
                 c.failed);
    out->Gauge("hips_last_checkpoint_version", "Version of the newest checkpoint on disk",
               c.last_version);
  }
}

}  // namespace

void CollectHqMetrics(const ParameterServerStatus& s, const EvalLoop& eval,
                      const Checkpointer* checkpointer, MetricFamilies* out) {
  CollectTraining(s, out);
  CollectAccounting(s, out);
  CollectStaleness(s.staleness, out);
  CollectState(s, eval, checkpointer, out);
}

void CollectHqServiceMetrics(const HqService& service, MetricFamilies* out) {
  out->Counters("hips_calls_refused_total",
                "Calls refused before they were served (credentials, identity), by reason",
                "reason", AllRefusalReasons(), service.refusals());
  if (std::optional<ChainWeightsEncoder::Counters> chain = service.weights_chain_counters()) {
    out->Counters(
        "hips_weights_sent_total", "Weights streams to aggregators, as a compressed delta or whole",
        "form", {"delta", "whole"}, {{"delta", chain->deltas_sent}, {"whole", chain->whole_sent}});
    out->Counter("hips_weights_resyncs_total",
                 "Versions sent whole to every aggregator, exactly HQ's weights",
                 static_cast<double>(chain->resyncs));
    out->Gauge("hips_weights_drift",
               "Largest difference between HQ's newest weights and what aggregators hold",
               chain->drift);
  }
}

}  // namespace hips
