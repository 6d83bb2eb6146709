#include "services/rounds/sync_round.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/numeric/chunk_codec.h"

namespace hips {

SyncRound::SyncRound(size_t num_floats, int expected_contributions, int quorum,
                     absl::Duration grace, RobustMean robust)
    : expected_(expected_contributions),
      quorum_(expected_contributions > 0 ? std::clamp(quorum, 1, expected_contributions)
                                         : std::max(1, quorum)),
      grace_(grace),
      accumulator_(num_floats) {
  if (robust.kind != RobustMean::Kind::kNone) {
    combiner_ = std::make_unique<RobustCombiner>(num_floats, robust);
  }
}

void SyncRound::Open(int64_t version) {
  if (version != version_) {
    previous_version_ = version_;
    previous_covered_ = std::move(covered_);
  }
  senders_.clear();
  covered_.clear();
  version_ = version;
  state_ = State::kOpen;
  first_arrival_ = absl::InfiniteFuture();
  accumulator_.Reset();
  if (combiner_ != nullptr) combiner_->Reset();
  held_.clear();
  trimmed_.clear();
  held_down_.clear();
}

void SyncRound::Seal() {
  state_ = State::kClosed;
  if (combiner_ == nullptr) return;
  const Combined combined = combiner_->CombineInto(&accumulator_);
  for (size_t row : combined.outliers) trimmed_.push_back(held_[row]);
  for (size_t row : combined.held_down) held_down_.push_back(held_[row]);
  held_.clear();
}

absl::Time SyncRound::CloseAt() const {
  if (state_ != State::kOpen || grace_ == absl::InfiniteDuration() ||
      first_arrival_ == absl::InfiniteFuture() || received() < quorum_) {
    return absl::InfiniteFuture();
  }
  return first_arrival_ + grace_;
}

void SyncRound::Close() {
  if (state_ == State::kOpen) Seal();
}

void SyncRound::MarkSenderDone(const std::string& sender, int64_t version) {
  if (version == version_ && state_ != State::kIdle) senders_.insert(sender);
}

bool SyncRound::CloseIfDue(absl::Time now) {
  const absl::Time close_at = CloseAt();  // infinite unless open with a quorum
  if (close_at == absl::InfiniteFuture() || now < close_at) return false;
  Seal();
  return true;
}

absl::StatusOr<SyncRound::AddOutcome> SyncRound::Add(const Contribution& c, DropReason* reason,
                                                     absl::Time now) {
  if (state_ == State::kIdle || c.version > version_) {
    *reason = DropReason::kFutureVersion;
    return absl::FailedPreconditionError(absl::StrCat("gradient of version ", c.version,
                                                      " but the newest round here is ", version_));
  }
  if (c.contributors == 0 && c.version == version_) {
    // Nothing to sum: the sender is done, its members' gradients went on
    // alone.
    if (c.completes_sender) senders_.insert(c.sender);
    covered_.insert(c.members.begin(), c.members.end());
    return AddOutcome::kAccepted;
  }
  const std::vector<std::string> own = {c.sender};
  const std::vector<std::string>& members = c.members.empty() ? own : c.members;
  if (c.version < version_) {
    if (c.version == previous_version_ &&
        std::all_of(members.begin(), members.end(),
                    [&](const std::string& m) { return previous_covered_.contains(m); })) {
      return AddOutcome::kDuplicate;
    }
    *reason = DropReason::kStaleVersion;
    return absl::FailedPreconditionError(
        absl::StrCat("stale gradient of version ", c.version, "; the open round is ", version_));
  }
  const size_t repeated = static_cast<size_t>(std::count_if(
      members.begin(), members.end(), [&](const std::string& m) { return covered_.contains(m); }));
  if (repeated == members.size()) {
    if (c.completes_sender) senders_.insert(c.sender);
    return AddOutcome::kDuplicate;
  }
  if (repeated > 0) {
    if (c.completes_sender) senders_.insert(c.sender);
    *reason = DropReason::kRepeatedContributor;
    return absl::FailedPreconditionError(absl::StrCat(repeated, " of the ", members.size(),
                                                      " gradients from ", c.sender,
                                                      " are already in round ", version_));
  }
  if (state_ == State::kClosed) {
    *reason = DropReason::kRoundClosed;
    return absl::FailedPreconditionError(
        absl::StrCat("round ", version_, " already closed with ", received(), " contributions"));
  }
  // The accumulator checks the values as it adds them.
  if (absl::Status s = ValidateContribution(c, accumulator_.num_floats(), /*check_values=*/false);
      !s.ok()) {
    *reason = DropReason::kInvalid;
    return s;
  }
  if (absl::Status s =
          combiner_ != nullptr
              ? combiner_->Add(c.values, c.scale, c.samples, c.loss_sum, c.contributors)
              : accumulator_.Add(c.values, c.scale, c.samples, c.loss_sum, c.contributors);
      !s.ok()) {
    *reason = RefusalReason(s);
    return s;
  }
  if (combiner_ != nullptr) held_.push_back(c.sender);
  if (c.completes_sender) senders_.insert(c.sender);
  covered_.insert(members.begin(), members.end());
  if (first_arrival_ == absl::InfiniteFuture()) first_arrival_ = now;
  if (expected_ > 0 && received() >= expected_) {
    Seal();
  } else {
    CloseIfDue(now);
  }
  return AddOutcome::kAccepted;
}

}  // namespace hips
