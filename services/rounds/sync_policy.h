#ifndef HIPS_SERVICES_ROUNDS_SYNC_POLICY_H_
#define HIPS_SERVICES_ROUNDS_SYNC_POLICY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "services/rounds/round_policy.h"
#include "services/rounds/sync_round.h"

namespace hips {

// sync: one round per version, at both tiers. A round holds one
// contribution per member (a worker's gradient at an aggregator, an
// aggregator's sum at HQ) computed on the round's version, and closes
//   complete  every live member the host waits for is done (the tier is
//             formed and someone is), or
//   deadline  `round_deadline` after its first contribution, with at least
//             `quorum` done (backup workers);
// a late contribution of a closed round is refused (round_closed), never
// applied to another version. A closed round emits its sum (kRound). An
// aggregator sends a retry on alone (kAlone), which covers its worker in
// the round. A refused contribution ends its sender's part of the round
// (Refused). At HQ a complete round with no sum (every aggregate refused or
// empty) moves the version on with the weights unchanged, and HQ's step is
// w - lr·mean with the optimizer's own settings.
class SyncPolicy : public RoundPolicy {
 public:
  SyncPolicy(RoundPolicyOptions options, RoundHost* host);

  std::shared_ptr<const WeightsSnapshot> Begin(const VersionState& tier,
                                               std::shared_ptr<const WeightsSnapshot> weights,
                                               std::vector<ContributorRef>* superseded) override;
  void MarkDone(const std::string& sender, int64_t version, absl::Time now) override;
  void MembersChanged() override;
  void Poll(absl::Time now) override;
  absl::Time CloseAt() const override { return round_.CloseAt(); }
  std::vector<ContributorRef> Release() override;
  std::vector<std::string> WaitingFor() const override;
  bool HoldsNewerWeights() const override;

  const SyncRound& round() const { return round_; }

 protected:
  Verdict AdmitChecked(const Contribution& c, absl::Time now, const Take& take) override;
  Verdict AdmitRetry(const Contribution& c, absl::Time now, const Take& take) override;

  // A refusal that comes before the round's own checks (fedavg: a worker
  // not drawn; edge rounds: another round's delta).
  virtual std::optional<Refusal> CheckRound(const Contribution& c) const;
  // Whether the open round has everyone it waits for.
  virtual bool Complete() const;
  // The round closed: hand it to the host.
  virtual void Emit();
  // The edge round open at this tier (0 but in edge rounds): a delta of
  // another one is refused.
  virtual int64_t open_edge_round() const { return 0; }

  // Closes and emits the open round if it is complete.
  void EmitIfComplete();
  // Closes and emits the open round if its deadline passed with a quorum.
  void EmitIfDue(absl::Time now);
  // Records that `sender` is done with the open round without a sum.
  void Cover(const std::string& sender, int64_t version, absl::Time now);
  // The round's output: its sum, totals and refs.
  RoundOutput TakeRound();

  // The members the open round waits for (those of them still live): the
  // live ones when it opened, or when the tier formed for a round opened
  // while it formed. A member that joins later takes part from the next
  // round (its contribution to this one is still taken if it comes in
  // time). Null until known.
  const absl::flat_hash_set<std::string>* RoundMembers() const;

  SyncRound round_;
  // The tier's handles of the contributions summed in round_.
  std::vector<ContributorRef> refs_;

 private:
  mutable std::optional<absl::flat_hash_set<std::string>> round_members_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_SYNC_POLICY_H_
