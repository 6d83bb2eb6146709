#include "services/rounds/contribution.h"

#include "absl/strings/str_cat.h"
#include "services/core/gradient_accumulator.h"

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

}  // namespace hips
