#include "services/rounds/fedavg_policy.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/numeric/fedavg.h"

namespace hips {

namespace {

// SplitMix64: a small generator whose sequence is the same on every
// platform (std:: distributions are not).
uint64_t SplitMix(uint64_t* state) {
  uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

}  // namespace

std::vector<std::string> DrawParticipants(std::vector<std::string> live, double fraction,
                                          int64_t version, absl::string_view salt) {
  std::sort(live.begin(), live.end());
  const size_t n = live.size();
  if (fraction >= 1.0 || n <= 1) return live;
  const size_t k = std::clamp<size_t>(
      static_cast<size_t>(std::llround(fraction * static_cast<double>(n))), 1, n);
  uint64_t state = 1469598103934665603ULL;  // FNV-1a of the salt, then the version
  for (char c : salt) state = (state ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  state ^= static_cast<uint64_t>(version) * 0x9E3779B97F4A7C15ULL;
  // The first k of a Fisher-Yates shuffle.
  for (size_t i = 0; i < k; ++i) {
    const size_t j = i + static_cast<size_t>(SplitMix(&state) % (n - i));
    std::swap(live[i], live[j]);
  }
  live.resize(k);
  std::sort(live.begin(), live.end());
  return live;
}

absl::Status ValidateServerStep(double lr, double momentum) {
  if (!(lr > 0 && lr <= 1000)) {
    return absl::InvalidArgumentError(absl::StrCat("--server_lr must be in (0, 1000], got ", lr));
  }
  if (!(momentum >= 0 && momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--server_momentum must be in [0, 1), got ", momentum));
  }
  return absl::OkStatus();
}

std::shared_ptr<const WeightsSnapshot> FedAvgPolicy::Begin(
    const VersionState& tier, std::shared_ptr<const WeightsSnapshot> weights,
    std::vector<ContributorRef>* superseded) {
  weights = SyncPolicy::Begin(tier, std::move(weights), superseded);
  Draw(tier);
  return Serve(std::move(weights), /*edge_epoch=*/0);
}

void FedAvgPolicy::Draw(const VersionState& tier) {
  participants_.clear();
  awaits_forming_ = false;
  if (options_.tier != RoundPolicyOptions::Tier::kAggregator || tier.training_done ||
      mode().participation >= 1.0) {
    return;
  }
  if (host_->members().forming()) {
    // Drawn once the tier has formed (its round cannot close before); with
    // edge rounds everyone takes part in the first version instead.
    awaits_forming_ = mode().edge_rounds <= 1;
    return;
  }
  participants_ =
      DrawParticipants(host_->members().Live(), mode().participation, tier.version, options_.id);
}

std::shared_ptr<const WeightsSnapshot> FedAvgPolicy::Formed(
    const VersionState& tier, std::shared_ptr<const WeightsSnapshot> held) {
  Draw(tier);
  return Serve(std::move(held), /*edge_epoch=*/0);
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

std::vector<std::string> FedAvgPolicy::LiveOnesMissing(
    const std::vector<std::string>& members) const {
  std::vector<std::string> missing;
  if (tier_.training_done || round_.state() != SyncRound::State::kOpen) return missing;
  for (const std::string& id : members) {
    if (host_->members().IsLive(id) && !round_.senders().contains(id)) missing.push_back(id);
  }
  std::sort(missing.begin(), missing.end());
  return missing;
}

bool FedAvgPolicy::Complete() const {
  return participants_.empty() ? SyncPolicy::Complete() : LiveOnesDone(participants_);
}

std::vector<std::string> FedAvgPolicy::WaitingFor() const {
  return participants_.empty() ? SyncPolicy::WaitingFor() : LiveOnesMissing(participants_);
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
