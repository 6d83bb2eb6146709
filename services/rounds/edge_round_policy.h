#ifndef HIPS_SERVICES_ROUNDS_EDGE_ROUND_POLICY_H_
#define HIPS_SERVICES_ROUNDS_EDGE_ROUND_POLICY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "services/rounds/fedavg_policy.h"

namespace hips {

// fedavg with E > 1 edge rounds at an aggregator (HierFAVG; docs/wan.md):
// a closed round's mean delta moves the aggregator's own copy of the model,
// which goes back to its workers as the weights of (version, e + 1); the
// round's pushes are acknowledged here (kEdgeRound: applied at the edge).
// After the E-th round one aggregate goes to HQ: the copy's delta from HQ's
// weights of the version, weighted by every sample of its rounds
// (EdgeAggregateInto), carrying the last round's pushes, acknowledged end
// to end. A version's rounds wait only for the workers live at its start
// (or drawn): one that joined since may have pushed the version's last
// round elsewhere. A delta of another edge round is refused (stale or
// future), and so is a retry new to this aggregator (edge_retry): its first
// attempt may be in another copy already. After training, plain fedavg.
class EdgeRoundPolicy : public FedAvgPolicy {
 public:
  EdgeRoundPolicy(RoundPolicyOptions options, RoundHost* host)
      : FedAvgPolicy(std::move(options), host) {}

  std::shared_ptr<const WeightsSnapshot> Begin(const VersionState& tier,
                                               std::shared_ptr<const WeightsSnapshot> weights,
                                               std::vector<ContributorRef>* superseded) override;

  int64_t edge_round() const { return edge_round_; }
  std::vector<std::string> WaitingFor() const override;

 protected:
  Verdict AdmitRetry(const Contribution& c, absl::Time now, const Take& take) override;
  bool Complete() const override;
  void Emit() override;
  int64_t open_edge_round() const override { return edge_round_; }

 private:
  // An edge round before the version's last closed: the copy moves, the
  // round's pushes are answered here, the next round opens.
  void Advance();
  // The version's last round closed: the aggregate for HQ.
  void EmitAggregate();

  // Edge rounds run for the open version (not after training).
  bool edge_ = false;
  // The open round's number; HQ's weights of the version, and the copy the
  // open round's workers compute on.
  int64_t edge_round_ = 0;
  std::shared_ptr<const WeightsSnapshot> start_;
  std::shared_ptr<const WeightsSnapshot> copy_;
  // The samples, loss and pushes of the version's closed rounds.
  int64_t samples_ = 0;
  double loss_ = 0;
  int64_t pushes_ = 0;
  // The workers live when the version's first round opened (sorted; with a
  // draw, participants_ instead).
  std::optional<std::vector<std::string>> version_members_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_EDGE_ROUND_POLICY_H_
