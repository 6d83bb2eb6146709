#ifndef HIPS_SERVICES_ROUNDS_FEDAVG_POLICY_H_
#define HIPS_SERVICES_ROUNDS_FEDAVG_POLICY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "services/rounds/sync_policy.h"

namespace hips {

// The workers an aggregator draws for the round of `version`: round(F·n),
// at least 1, of the `live` ones (n of them), chosen by a generator seeded
// with `version` and `salt` (the aggregator's id), so that every run of the
// same cluster draws the same and aggregators draw independently. Sorted.
// All of them when `fraction` >= 1.
std::vector<std::string> DrawParticipants(std::vector<std::string> live, double fraction,
                                          int64_t version, absl::string_view salt);

// INVALID_ARGUMENT unless FedAvgM's step at HQ is server_lr in (0, 1000]
// (--server_lr) and server_momentum in [0, 1) (--server_momentum).
absl::Status ValidateServerStep(double server_lr, double server_momentum);

// fedavg (local SGD, federated averaging; docs/modes.md, docs/wan.md):
// rounds as in sync, of the workers' model deltas after `local_steps` SGD
// steps each. With participation F < 1 an aggregator draws round(F·n) of
// its n live workers for each round (seeded by the version and its id,
// once the tier is formed) and serves the draw with the weights; a delta of
// a worker not drawn is refused (not_drawn), and the round is complete once
// every live drawn worker is in. At HQ a round in which nobody took part
// (every drawn worker gone) moves the version on with the weights
// unchanged, and HQ's step is FedAvgM's: w <- w - server_lr·v, v <-
// server_momentum·v + mean delta; the workers' local SGD (the optimizer's
// learning rate, schedule, momentum, Nesterov and weight decay) travels
// with the weights.
class FedAvgPolicy : public SyncPolicy {
 public:
  FedAvgPolicy(RoundPolicyOptions options, RoundHost* host)
      : SyncPolicy(std::move(options), host) {}

  std::shared_ptr<const WeightsSnapshot> Begin(const VersionState& tier,
                                               std::shared_ptr<const WeightsSnapshot> weights,
                                               std::vector<ContributorRef>* superseded) override;

  SgdSettings StepSettings(const SgdSettings& base) const override;
  double StepRate(const RoundOutput& out, double scheduled_lr,
                  const SgdSettings& in_use) const override;
  LocalSgd WorkersSgd(double scheduled_lr) const override;
  bool StepsOnDeltas() const override { return true; }

  // An aggregator drawing F < 1 of its workers serves a version's weights
  // only once it has formed: while forming, everyone would take part (with
  // thousands of homes, every home of the tier at once).
  bool AwaitsForming() const override { return awaits_forming_; }
  std::shared_ptr<const WeightsSnapshot> Formed(
      const VersionState& tier, std::shared_ptr<const WeightsSnapshot> held) override;

  // The workers drawn for the open round, sorted (empty: everyone).
  const std::vector<std::string>& participants() const { return participants_; }
  std::vector<std::string> WaitingFor() const override;

 protected:
  std::optional<Refusal> CheckRound(const Contribution& c) const override;
  bool Complete() const override;

  // Draws the open round's workers (an aggregator, with F < 1, formed).
  void Draw(const VersionState& tier);
  // `weights` as served below: a copy that carries the draw and, when not
  // 0, this aggregator's edge epoch (one copy at most).
  std::shared_ptr<const WeightsSnapshot> Serve(std::shared_ptr<const WeightsSnapshot> weights,
                                               int64_t edge_epoch) const;
  // Whether every one of `members` that is live is done with the round.
  bool LiveOnesDone(const std::vector<std::string>& members) const;
  // The live ones of `members` not done with the round, in id order.
  std::vector<std::string> LiveOnesMissing(const std::vector<std::string>& members) const;

  std::vector<std::string> participants_;
  bool awaits_forming_ = false;
};

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_FEDAVG_POLICY_H_
