#include "services/metrics/round_metrics.h"

#include <string>

namespace hips {

void CollectRoundWait(const RoundWait& round, MetricFamilies* out) {
  if (round.version < 0) return;  // no round open yet
  out->Gauge("hips_round_open_seconds", "How long the open round has been open", round.waited_s);
  // Bounded by the live membership: a round waits only for live members.
  for (const std::string& member : round.members) {
    out->Gauge("hips_round_waiting_seconds",
               "How long the open round has waited for this member (one series per member "
               "it still waits for)",
               round.waited_s, {{"member", member}});
  }
}

}  // namespace hips
