#ifndef HIPS_SERVICES_ROUNDS_ROUND_POLICIES_H_
#define HIPS_SERVICES_ROUNDS_ROUND_POLICIES_H_

#include <memory>

#include "services/rounds/round_policy.h"

// Every consistency mode's round policy, by mode: what a tier asks for.
// A new mode adds its policy here (and its proto and flags); the tiers do
// not change (docs/architecture.md, "Round policies").

namespace hips {

// The policy of `options.mode` for `options.tier`: sync (SyncPolicy),
// async and ssp (AsyncPolicy), fedavg (FedAvgPolicy), fedavg with edge
// rounds at an aggregator (EdgeRoundPolicy).
std::unique_ptr<RoundPolicy> MakeRoundPolicy(RoundPolicyOptions options, RoundHost* host);

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_ROUND_POLICIES_H_
