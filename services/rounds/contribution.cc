#include "services/rounds/contribution.h"

#include "absl/strings/str_cat.h"
#include "services/numeric/gradient_accumulator.h"

namespace hips {

absl::Status ValidateContribution(const Contribution& c, size_t num_floats, bool check_values) {
  if (c.sender.empty()) return absl::InvalidArgumentError("contribution without a sender id");
  if (c.contributors <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("contributor count must be positive, got ", c.contributors));
  }
  if (c.samples <= 0 || c.samples > GradientAccumulator::kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample count must be in (0, 2^31], got ", c.samples));
  }
  if (c.values.num_floats != static_cast<int64_t>(num_floats)) {
    return absl::InvalidArgumentError(
        absl::StrCat("gradient has ", c.values.num_floats, " floats, the model has ", num_floats));
  }
  if (check_values) return CheckEncodedValues(c.values);
  // The accumulator checks the values as it reads them; the size it needs.
  const int64_t bytes = PayloadBytes(c.values.encoding, c.values.num_floats, c.values.nonzeros);
  if (static_cast<int64_t>(c.values.bytes.bytes()) != bytes ||
      (c.values.encoding == Encoding::kTopK && c.values.nonzeros > c.values.num_floats)) {
    return CheckEncodedValues(c.values);  // says what is wrong
  }
  return absl::OkStatus();
}

Contribution ContributionOf(const GradientPush& push) {
  Contribution c;
  c.sender = push.sender;
  c.version = push.version;
  c.samples = push.samples;
  c.loss_sum = push.loss_sum;
  c.contributors = 1;
  c.scale = push.received.scaled ? 1.0f : static_cast<float>(push.samples);
  c.values = push.values();
  c.retry = push.retry;
  c.edge_round = push.edge_round;
  return c;
}

Contribution ContributionOf(const AggregatePush& a) {
  Contribution c;
  c.sender = a.aggregator;
  c.version = a.version;
  c.samples = a.total_samples;
  c.loss_sum = a.loss_sum;
  c.contributors = a.contributors;
  c.scale = 1.0f;  // already Σ n_i·g_i
  c.values = a.values();
  // A retried gradient sent alone covers its worker, not its aggregator.
  c.completes_sender = !a.single;
  for (const ContributorRef& ref : a.contributor_list) c.members.push_back(ref.worker);
  c.versions = a.contributor_versions;
  return c;
}

}  // namespace hips
