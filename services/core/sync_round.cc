#include "services/core/sync_round.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "services/core/chunk_codec.h"

namespace hips {

absl::string_view DropReasonName(DropReason reason) {
  switch (reason) {
    case DropReason::kStaleVersion:
      return "stale_version";
    case DropReason::kFutureVersion:
      return "future_version";
    case DropReason::kRoundClosed:
      return "round_closed";
    case DropReason::kInvalid:
      return "invalid";
  }
  return "unknown";
}

SyncRound::SyncRound(size_t num_floats, int expected_contributions)
    : expected_(expected_contributions), accumulator_(num_floats) {}

void SyncRound::Open(int64_t version) {
  if (version != version_) {
    previous_version_ = version_;
    previous_senders_ = std::move(senders_);
  }
  senders_.clear();
  version_ = version;
  state_ = State::kOpen;
  accumulator_.Reset();
}

absl::StatusOr<SyncRound::AddOutcome> SyncRound::Add(const Contribution& c, DropReason* reason) {
  if (state_ == State::kIdle || c.version > version_) {
    *reason = DropReason::kFutureVersion;
    return absl::FailedPreconditionError(absl::StrCat(
        "gradient of version ", c.version, " but the newest round here is ", version_));
  }
  if (c.version < version_) {
    if (c.version == previous_version_ && previous_senders_.contains(c.sender)) {
      return AddOutcome::kDuplicate;
    }
    *reason = DropReason::kStaleVersion;
    return absl::FailedPreconditionError(absl::StrCat(
        "stale gradient of version ", c.version, "; the open round is ", version_));
  }
  if (senders_.contains(c.sender)) return AddOutcome::kDuplicate;
  if (state_ == State::kClosed) {
    *reason = DropReason::kRoundClosed;
    return absl::FailedPreconditionError(absl::StrCat(
        "round ", version_, " already closed with ", expected_, " contributions"));
  }
  if (c.sender.empty()) {
    *reason = DropReason::kInvalid;
    return absl::InvalidArgumentError("contribution without a sender id");
  }
  if (c.contributors <= 0) {
    *reason = DropReason::kInvalid;
    return absl::InvalidArgumentError(
        absl::StrCat("contributor count must be positive, got ", c.contributors));
  }
  if (absl::Status s = CheckFinite(c.values); !s.ok()) {
    *reason = DropReason::kInvalid;
    return s;
  }
  if (absl::Status s = accumulator_.Add(c.values, c.scale, c.samples, c.loss_sum, c.contributors);
      !s.ok()) {
    *reason = DropReason::kInvalid;
    return s;
  }
  senders_.insert(c.sender);
  if (static_cast<int>(senders_.size()) >= expected_) state_ = State::kClosed;
  return AddOutcome::kAccepted;
}

}  // namespace hips
