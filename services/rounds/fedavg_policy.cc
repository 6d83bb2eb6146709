#include "services/rounds/fedavg_policy.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/core/fedavg.h"

namespace hips {

std::shared_ptr<const WeightsSnapshot> FedAvgPolicy::Begin(
    const VersionState& tier, std::shared_ptr<const WeightsSnapshot> weights,
    std::vector<ContributorRef>* superseded) {
  weights = SyncPolicy::Begin(tier, std::move(weights), superseded);
  Draw(tier);
  return Serve(std::move(weights), /*edge_epoch=*/0);
}

void FedAvgPolicy::Draw(const VersionState& tier) {
  participants_.clear();
  // Until the tier is formed everyone takes part.
  if (options_.tier == RoundPolicyOptions::Tier::kAggregator && !tier.training_done &&
      mode().participation < 1.0 && !host_->members().forming()) {
    participants_ =
        DrawParticipants(host_->members().Live(), mode().participation, tier.version, options_.id);
  }
}

std::shared_ptr<const WeightsSnapshot> FedAvgPolicy::Serve(
    std::shared_ptr<const WeightsSnapshot> weights, int64_t edge_epoch) const {
  if (weights == nullptr || (participants_.empty() && edge_epoch == 0)) return weights;
  auto served = std::make_shared<WeightsSnapshot>(*weights);
  served->participants = participants_;
  served->edge_epoch = edge_epoch;
  return served;
}

std::optional<Refusal> FedAvgPolicy::CheckRound(const Contribution& c) const {
  if (std::optional<Refusal> r = SyncPolicy::CheckRound(c)) return r;
  if (participants_.empty() || c.version != round_.version() ||
      std::binary_search(participants_.begin(), participants_.end(), c.sender)) {
    return std::nullopt;
  }
  return Refusal{DropReason::kNotDrawn,
                 absl::FailedPreconditionError(
                     absl::StrCat(c.sender, " was not drawn for the round of version ", c.version,
                                  " (--participation=", mode().participation, ")"))};
}

bool FedAvgPolicy::LiveOnesDone(const std::vector<std::string>& members) const {
  // (With none left and none in, the round closes empty: the tier is done
  // with the version.)
  for (const std::string& id : members) {
    if (host_->members().IsLive(id) && !round_.senders().contains(id)) return false;
  }
  return true;
}

bool FedAvgPolicy::Complete() const {
  return participants_.empty() ? SyncPolicy::Complete() : LiveOnesDone(participants_);
}

SgdSettings FedAvgPolicy::StepSettings(const SgdSettings& base) const {
  // The workers' local steps had the weight decay and the momentum; HQ's
  // step is FedAvgM's.
  return SgdSettings{options_.hq.server_momentum, false, 0.0};
}

double FedAvgPolicy::StepRate(const RoundOutput& out, double scheduled_lr,
                              const SgdSettings& in_use) const {
  return options_.hq.server_lr;
}

LocalSgd FedAvgPolicy::WorkersSgd(double scheduled_lr) const {
  const SgdSettings& base = options_.hq.base;
  return LocalSgd{scheduled_lr, base.momentum, base.nesterov, base.weight_decay};
}

}  // namespace hips
