#ifndef HIPS_SERVICES_ROUNDS_CONTRIBUTION_H_
#define HIPS_SERVICES_ROUNDS_CONTRIBUTION_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "services/numeric/compression.h"
#include "services/types/drop_reason.h"
#include "services/types/payloads.h"

namespace hips {

// One contribution to a round: a worker's gradient or an aggregator's sum.
struct Contribution {
  std::string sender;
  // The worker gradients inside (an aggregate's contributors); empty means
  // just the sender's own. A round holds each worker's gradient once.
  std::vector<std::string> members;
  // False for a retried worker gradient that an aggregator forwards alone:
  // it covers its worker but does not end the aggregator's part of the
  // round (its regular aggregate still comes).
  bool completes_sender = true;
  int64_t version = 0;
  int64_t samples = 0;
  double loss_sum = 0.0;
  // 0: nothing to sum, the contribution only records that `members` are
  // covered (their gradients went on alone) and, with completes_sender,
  // that the sender is done.
  int64_t contributors = 1;
  // Factor applied to `values` before summing (n_i for a worker's mean
  // gradient, 1 for an already weighted sum).
  float scale = 1.0f;
  // The values as they arrived (straight out of a stream's slices, in the
  // sender's encoding).
  EncodedValues values;
  // A worker's gradient at an aggregator: a retry whose first attempt may
  // have reached HQ through another aggregator (it goes on alone), and the
  // edge round of the weights it was computed on (fedavg edge rounds).
  bool retry = false;
  int64_t edge_round = 0;
  // An aggregate at HQ in async and ssp: its contributors per version they
  // were computed on (empty: all on `version`).
  std::map<int64_t, int64_t> versions;
};

// Checks what every tier checks before summing a contribution of a model of
// `num_floats` floats: sender, counts, size, finite values.
// `check_values` false skips the finiteness of the values, for a caller
// that adds them to a GradientAccumulator next (its Add checks them in the
// same read it needs anyway).
absl::Status ValidateContribution(const Contribution& c, size_t num_floats,
                                  bool check_values = true);

// A worker's gradient as its aggregator's round takes it (its values, read
// by a PushReceiver, may carry their sample count already).
Contribution ContributionOf(const GradientPush& push);
// An aggregator's sum as HQ's round takes it.
Contribution ContributionOf(const AggregatePush& aggregate);

}  // namespace hips

#endif  // HIPS_SERVICES_ROUNDS_CONTRIBUTION_H_
