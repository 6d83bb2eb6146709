#include "services/rounds/round_policies.h"

#include <utility>

#include "services/rounds/async_policy.h"
#include "services/rounds/buffered_policy.h"
#include "services/rounds/edge_round_policy.h"
#include "services/rounds/fedavg_policy.h"
#include "services/rounds/sync_policy.h"

namespace hips {

std::unique_ptr<RoundPolicy> MakeRoundPolicy(RoundPolicyOptions options, RoundHost* host) {
  if (options.tier == RoundPolicyOptions::Tier::kHq && options.mode.hq_buffer > 0) {
    return std::make_unique<BufferedPolicy>(std::move(options), host);
  }
  switch (options.mode.mode) {
    case Mode::kSync:
      return std::make_unique<SyncPolicy>(std::move(options), host);
    case Mode::kAsync:
    case Mode::kSsp:
      return std::make_unique<AsyncPolicy>(std::move(options), host);
    case Mode::kFedAvg:
      if (options.mode.edge_rounds > 1 && options.tier == RoundPolicyOptions::Tier::kAggregator) {
        return std::make_unique<EdgeRoundPolicy>(std::move(options), host);
      }
      return std::make_unique<FedAvgPolicy>(std::move(options), host);
  }
  return nullptr;
}

}  // namespace hips
