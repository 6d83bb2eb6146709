#ifndef HIPS_SERVICES_ROUNDS_BUFFERED_POLICY_H_
#define HIPS_SERVICES_ROUNDS_BUFFERED_POLICY_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "services/rounds/round_policy.h"

namespace hips {

// HQ's buffered rounds across MDCs (sync or fedavg with hq_buffer = K > 0;
// FedBuff, docs/noniid.md). Within an MDC rounds stay as the mode has them;
// at HQ no round waits for an MDC. Each MDC aggregate is added as it
// arrives, whatever version it was computed on, weighted by its staleness
// s(τ) (τ: HQ's version minus its version; StalenessWeight):
//   sum += s(τ)·Σ n_i·g_i,   samples += Σ n_i,
// and once K aggregates are in HQ steps on sum / samples (a stale one pulls
// less; with s = 1 and every MDC in, it is the sync round's mean) with the
// mode's own step (sync: the optimizer's; fedavg: FedAvgM's), its rate
// scaled by the buffer's share of a round: its aggregates over the live
// MDCs HQ waits for (M), or 1 when every one of them had its turn. A round
// of M MDCs is one step; the same
// aggregates in buffers of K < M are M/K steps, each K/M of it, so the
// weights move as far per aggregate whatever K (unscaled, K = 1 of 2 MDCs
// moved them twice as far per aggregate and diverged on the WAN testbed:
// docs/noniid.md). An MDC
// finishes its round before it takes HQ's newer weights
// (RoundPolicy::HoldsNewerWeights), so it sends one aggregate per version it
// trained on: a buffer also closes short of K once every live MDC HQ waits
// for has sent since the last step (none of them could send again before
// HQ moves on). An empty aggregate or a refused one counts as its sender's
// turn, not toward K; a buffer of only those moves the version on with the
// weights unchanged. With HQ's --round_deadline_ms a buffer also closes
// that long after its first aggregate once it holds min(quorum, K) of
// them, as a sync round does at its deadline: a live MDC that never sends
// (K >= the live MDCs) does not hold HQ for good.
class BufferedPolicy : public RoundPolicy {
 public:
  BufferedPolicy(RoundPolicyOptions options, RoundHost* host);

  std::shared_ptr<const WeightsSnapshot> Begin(const VersionState& tier,
                                               std::shared_ptr<const WeightsSnapshot> weights,
                                               std::vector<ContributorRef>* superseded) override;
  void MarkDone(const std::string& sender, int64_t version, absl::Time now) override;
  void Refused(const std::string& sender, int64_t version, DropReason reason,
               absl::Time now) override;
  void MembersChanged() override { EmitIfEveryoneIn(); }
  void Poll(absl::Time now) override;
  absl::Time CloseAt() const override;
  std::vector<ContributorRef> Release() override;
  // The live MDCs HQ waits for that have not sent since the last step.
  std::vector<std::string> WaitingFor() const override;

  SgdSettings StepSettings(const SgdSettings& base) const override {
    return step_->StepSettings(base);
  }
  double StepRate(const RoundOutput& out, double scheduled_lr,
                  const SgdSettings& in_use) const override {
    return step_->StepRate(out, scheduled_lr, in_use) * out.round_share;
  }
  LocalSgd WorkersSgd(double scheduled_lr) const override {
    return step_->WorkersSgd(scheduled_lr);
  }
  bool StepsOnDeltas() const override { return step_->StepsOnDeltas(); }

  // Aggregates in the buffer (toward K).
  int64_t buffered() const { return aggregates_; }

 protected:
  Verdict AdmitChecked(const Contribution& c, absl::Time now, const Take& take) override;
  // A retried gradient sent on alone goes into the buffer like an
  // aggregate, but is not an MDC's turn and does not count toward K.
  Verdict AdmitRetry(const Contribution& c, absl::Time now, const Take& take) override {
    return AdmitChecked(c, now, take);
  }

 private:
  // Marks `sender`'s turn since the last step.
  void Arrived(const std::string& sender);
  void EmitIfEveryoneIn();
  // `everyone`: every live MDC HQ waits for had its turn (a whole round).
  void Emit(bool everyone);
  // The live MDCs HQ waits for (M).
  int64_t WaitedFor() const;

  // The mode's own policy, for its step (sync's or fedavg's).
  std::unique_ptr<RoundPolicy> step_;
  GradientAccumulator buffer_;
  int64_t aggregates_ = 0;
  // When the buffer's first aggregate came (InfiniteFuture: none yet).
  absl::Time first_arrival_ = absl::InfiniteFuture();
  // Contributions per version they were computed on.
  std::map<int64_t, int64_t> versions_;
  std::vector<ContributorRef> refs_;
  absl::flat_hash_set<std::string> arrived_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_BUFFERED_POLICY_H_
