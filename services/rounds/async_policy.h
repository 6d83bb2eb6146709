#ifndef HIPS_SERVICES_ROUNDS_ASYNC_POLICY_H_
#define HIPS_SERVICES_ROUNDS_ASYNC_POLICY_H_

#include <memory>
#include <vector>

#include "services/rounds/coalescing_batch.h"
#include "services/rounds/round_policy.h"

namespace hips {

// async and ssp (staleness bound s): no rounds; every contribution goes on
// as it arrives, computed on whatever version. ssp refuses one more than s
// versions behind the newest version the tier knows of (at an aggregator
// that saves the hop: HQ would refuse it). An aggregator sums the
// gradients that arrive within `coalesce_window` of the first into one
// batch (kBatch; at most one per sender: a second one sends the batch so
// far), sent at once when `coalesce_capacity` senders are in; HQ applies
// each aggregate as it arrives, its learning rate scaled per gradient by
// its staleness (StalenessScaling) and by its samples over
// lr_reference_samples, with the momentum async_momentum (the rate keeps
// lr / (1 - momentum)).
class AsyncPolicy : public RoundPolicy {
 public:
  AsyncPolicy(RoundPolicyOptions options, RoundHost* host);

  std::shared_ptr<const WeightsSnapshot> Begin(const VersionState& tier,
                                               std::shared_ptr<const WeightsSnapshot> weights,
                                               std::vector<ContributorRef>* superseded) override;
  void Poll(absl::Time now) override;
  // At an aggregator a non-finite gradient is reported upward at once, in
  // an empty batch: there is no round whose aggregate would carry it, and
  // HQ judges divergence by such reports (docs/faults.md).
  void Refused(const std::string& sender, int64_t version, DropReason reason,
               absl::Time now) override;
  absl::Time CloseAt() const override { return batch_.CloseAt(); }
  std::vector<ContributorRef> Release() override;

  SgdSettings StepSettings(const SgdSettings& base) const override;
  double StepRate(const RoundOutput& out, double scheduled_lr,
                  const SgdSettings& in_use) const override;

 protected:
  Verdict AdmitChecked(const Contribution& c, absl::Time now, const Take& take) override;

 private:
  // HQ: an aggregate is applied alone, as it arrived.
  Verdict AdmitAggregate(const Contribution& c, const Take& take);
  // Sends the batch on (if anything is in it) and empties it.
  void EmitBatch();

  CoalescingBatch batch_;
  // The tier's handles of the contributions summed in batch_.
  std::vector<ContributorRef> refs_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_ASYNC_POLICY_H_
