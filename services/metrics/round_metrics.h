#ifndef HIPS_SERVICES_METRICS_ROUND_METRICS_H_
#define HIPS_SERVICES_METRICS_ROUND_METRICS_H_

#include "services/metrics/metrics_server.h"
#include "services/types/tier_status.h"

namespace hips {

// A tier's open round (HQ's and an aggregator's alike):
//   hips_round_open_seconds                  how long the open round has been open
//   hips_round_waiting_seconds{member="id"}  one series per member it still waits for,
//                                            valued how long it has waited
// (docs/observability.md; the HipsRoundWaiting alert reads the second).
void CollectRoundWait(const RoundWait& round, MetricFamilies* out);

}  // namespace hips

#endif  // HIPS_SERVICES_METRICS_ROUND_METRICS_H_
