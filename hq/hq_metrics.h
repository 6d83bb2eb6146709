#ifndef HIPS_HQ_HQ_METRICS_H_
#define HIPS_HQ_HQ_METRICS_H_

#include "hq/checkpointer.h"
#include "hq/eval_loop.h"
#include "hq/hq_service.h"
#include "hq/parameter_server.h"
#include "services/metrics/metrics_server.h"

namespace hips {

// HQ's metrics at scrape time, from the same snapshots GetStatus reports
// (docs/observability.md lists them). `checkpointer` may be null.
void CollectHqMetrics(const ParameterServerStatus& status, const EvalLoop& eval,
                      const Checkpointer* checkpointer, MetricFamilies* out);
// What HQ's service counts: calls refused, weights sent downstream.
void CollectHqServiceMetrics(const HqService& service, MetricFamilies* out);

}  // namespace hips

#endif  // HIPS_HQ_HQ_METRICS_H_
