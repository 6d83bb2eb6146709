#include "aggregator/aggregator.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace hips {

absl::Status ValidateAggregatorOptions(const AggregatorOptions& o) {
  if (o.id.empty()) return absl::InvalidArgumentError("aggregator id must not be empty");
  if (o.expected_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("an aggregator needs at least 1 worker, got ", o.expected_workers));
  }
  if (o.quorum_workers < 0 || o.quorum_workers > o.expected_workers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "worker quorum must be in [0, ", o.expected_workers, "], got ", o.quorum_workers));
  }
  if (o.round_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the round deadline must be positive (or infinite)");
  }
  if (o.max_queued_aggregates < 1) {
    return absl::InvalidArgumentError("at least 1 aggregate must be allowed to queue");
  }
  if (o.coalesce_window < absl::ZeroDuration() || o.coalesce_window > absl::Seconds(10)) {
    return absl::InvalidArgumentError("the coalescing window must be in [0, 10s]");
  }
  return absl::OkStatus();
}

Aggregator::Aggregator(AggregatorOptions options)
    : options_(std::move(options)), next_sequence_(FirstSequenceNumber()) {
  if (options_.round_deadline != absl::InfiniteDuration() ||
      options_.coalesce_window > absl::ZeroDuration()) {
    timer_ = std::make_unique<DeadlineTimer>([this] { return NextDeadline(); },
                                             [this](absl::Time now) { CloseDue(now); });
  }
}

Aggregator::~Aggregator() { Shutdown(); }

absl::Status Aggregator::Drop(DropReason reason, absl::Status why) {
  ++counters_.gradients_dropped[std::string(DropReasonName(reason))];
  return why;
}

absl::StatusOr<PushResult> Aggregator::AcceptGradient(const GradientPush& push, absl::Time now) {
  absl::MutexLock lock(&mu_);
  auto has_room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return shutdown_ || static_cast<int>(outbox_.size()) < options_.max_queued_aggregates;
  };
  mu_.Await(absl::Condition(&has_room));
  ++counters_.gradients_received;
  if (shutdown_) {
    return Drop(DropReason::kShutdown, absl::UnavailableError("this aggregator is shutting down"));
  }
  if (version_ < 0) {
    // Not the worker's fault and not final: the worker retries.
    return Drop(DropReason::kFutureVersion,
                absl::UnavailableError("this aggregator has no weights from HQ yet"));
  }
  PushResult result{push.version, /*duplicate=*/false, known_version_};
  if (repeats_.IsRepeat(push.sender, push.sequence)) {
    ++counters_.gradients_duplicate;
    result.duplicate = true;
    return result;
  }
  Contribution c;
  c.sender = push.sender;
  c.version = push.version;
  c.samples = push.samples;
  c.loss_sum = push.loss_sum;
  c.contributors = 1;
  c.scale = static_cast<float>(push.samples);
  c.values = push.gradient;
  if (absl::Status s = ValidateContribution(c, num_floats_); !s.ok()) {
    return Drop(DropReason::kInvalid, s);
  }
  if (training_done_) {
    return Drop(DropReason::kTrainingDone,
                absl::FailedPreconditionError(absl::StrCat("training ended at version ", version_)));
  }
  if (push.version > version_) {
    return Drop(DropReason::kFutureVersion,
                absl::FailedPreconditionError(absl::StrCat(
                    "gradient of version ", push.version, " but the newest here is ", version_)));
  }
  if (push.version < mode_since_) {
    return Drop(DropReason::kModeChanged,
                absl::FailedPreconditionError(absl::StrCat(
                    "gradient of version ", push.version, " predates the switch to ",
                    DescribeMode(mode_), " at version ", mode_since_)));
  }

  if (mode_.mode == Mode::kSync) {
    // A round past its deadline closes (and is sent on) before a late
    // gradient is looked at.
    if (round_->CloseIfDue(now)) EmitRound();
    const bool first = round_->received() == 0;
    DropReason reason;
    absl::StatusOr<SyncRound::AddOutcome> outcome = round_->Add(c, &reason, now);
    if (!outcome.ok()) return Drop(reason, outcome.status());
    if (*outcome == SyncRound::AddOutcome::kDuplicate) {
      ++counters_.gradients_duplicate;
      result.duplicate = true;
      return result;
    }
    repeats_.Record(push.sender, push.sequence);
    ++counters_.gradients_accepted;
    ++counters_.gradients_pending;
    if (round_->state() == SyncRound::State::kClosed) {
      EmitRound();
    } else if (first && timer_ != nullptr) {
      timer_->Poke();  // the round's deadline now runs
    }
    return result;
  }

  // HQ is at least at known_version_, so a gradient this stale is refused
  // there for sure: drop it here and save the hop.
  const int64_t staleness = known_version_ - push.version;
  if (mode_.mode == Mode::kSsp && staleness > mode_.staleness) {
    return Drop(DropReason::kStalenessExceeded,
                absl::FailedPreconditionError(absl::StrCat(
                    "gradient of version ", push.version, " is at least ", staleness,
                    " versions stale; the bound is ", mode_.staleness)));
  }
  // A second gradient of a sender: send the batch so far, start another.
  if (batch_->HasSender(push.sender)) EmitBatch();
  const bool first = batch_->empty();
  if (absl::Status s = batch_->Add(c, now); !s.ok()) return Drop(DropReason::kInvalid, s);
  repeats_.Record(push.sender, push.sequence);
  ++counters_.gradients_accepted;
  ++counters_.gradients_pending;
  if (batch_->full() || options_.coalesce_window == absl::ZeroDuration()) {
    EmitBatch();
  } else if (first && timer_ != nullptr) {
    timer_->Poke();  // the batch's window now runs
  }
  return result;
}

void Aggregator::Enqueue(const GradientAccumulator& acc, int64_t version,
                         std::map<int64_t, int64_t> versions) {
  AggregatePush out;
  out.aggregator = options_.id;
  out.version = version;
  out.total_samples = acc.total_samples();
  out.contributors = acc.contributors();
  out.loss_sum = acc.loss_sum();
  out.sequence = next_sequence_++;
  out.contributor_versions = std::move(versions);
  out.sum.assign(acc.sum().begin(), acc.sum().end());
  outbox_.push_back(std::move(out));
  ++counters_.rounds_closed;
}

void Aggregator::EmitRound() { Enqueue(round_->accumulator(), round_->version(), {}); }

void Aggregator::EmitBatch() {
  if (batch_->empty()) return;
  // One version: the plain form of an aggregate.
  std::map<int64_t, int64_t> versions;
  if (batch_->versions().size() > 1) versions = batch_->versions();
  Enqueue(batch_->accumulator(), batch_->oldest_version(), std::move(versions));
  batch_->Reset();
}

void Aggregator::DiscardAll(DropReason reason) {
  int64_t n = 0;
  if (round_ != nullptr && round_->state() == SyncRound::State::kOpen) {
    n += round_->accumulator().contributors();
  }
  if (batch_ != nullptr) {
    n += batch_->accumulator().contributors();
    batch_->Reset();
  }
  if (n == 0) return;
  counters_.gradients_dropped[std::string(DropReasonName(reason))] += n;
  counters_.gradients_pending -= n;
}

void Aggregator::RecordRefusal(DropReason reason) {
  absl::MutexLock lock(&mu_);
  ++counters_.gradients_received;
  ++counters_.gradients_dropped[std::string(DropReasonName(reason))];
}

void Aggregator::PublishWeights(std::shared_ptr<const WeightsSnapshot> snapshot) {
  {
    absl::MutexLock lock(&mu_);
    if (version_ >= 0 && (snapshot->version < version_ ||
                          (snapshot->version == version_ &&
                           (training_done_ || !snapshot->training_done)))) {
      return;  // not newer
    }
    const size_t num_floats = snapshot->weights.size();
    if (round_ == nullptr || num_floats != num_floats_) {
      // HQ trains another model now: what was summed for the old one is void.
      DiscardAll(DropReason::kInvalid);
      num_floats_ = num_floats;
      const int quorum =
          options_.quorum_workers == 0 ? options_.expected_workers : options_.quorum_workers;
      round_ = std::make_unique<SyncRound>(num_floats, options_.expected_workers, quorum,
                                           options_.round_deadline);
      batch_ = std::make_unique<CoalescingBatch>(num_floats, options_.expected_workers,
                                                 options_.coalesce_window);
    }
    const bool mode_changed =
        snapshot->mode != mode_ || snapshot->mode_since != mode_since_;
    if (snapshot->training_done) {
      DiscardAll(DropReason::kUnfinished);
    } else if (mode_changed) {
      DiscardAll(DropReason::kModeChanged);
      if (version_ >= 0) {
        LOG(INFO) << "mode " << DescribeMode(snapshot->mode) << " from version "
                  << snapshot->mode_since;
      }
    } else if (mode_.mode == Mode::kSync) {
      // HQ moved on without this round (it closed at HQ's deadline).
      DiscardAll(DropReason::kSuperseded);
    }
    version_ = snapshot->version;
    mode_ = snapshot->mode;
    mode_since_ = snapshot->mode_since;
    training_done_ = snapshot->training_done;
    known_version_ = std::max(known_version_, version_);
    // The round opens before any worker can see its weights, so no gradient
    // of this version can arrive before its round exists.
    if (!training_done_ && mode_.mode == Mode::kSync) {
      round_->Open(version_);
    } else {
      round_->Open(-1);  // nothing can join it: versions are >= 0
    }
  }
  board_.Publish(std::move(snapshot));
}

absl::Time Aggregator::NextDeadline() const {
  absl::MutexLock lock(&mu_);
  if (round_ == nullptr) return absl::InfiniteFuture();
  return std::min(round_->CloseAt(), batch_->CloseAt());
}

void Aggregator::CloseDue(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (shutdown_ || round_ == nullptr) return;
  if (round_->CloseIfDue(now)) {
    VLOG(1) << "round " << round_->version() << " closed at its deadline with "
            << round_->received() << " of " << round_->expected() << " gradients";
    EmitRound();
  }
  if (now >= batch_->CloseAt()) EmitBatch();
}

std::optional<AggregatePush> Aggregator::NextAggregate() {
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return shutdown_ || !outbox_.empty();
  };
  mu_.Await(absl::Condition(&ready));
  if (shutdown_) return std::nullopt;
  AggregatePush out = std::move(outbox_.front());
  outbox_.pop_front();
  return out;
}

void Aggregator::ReportForwarded(const AggregatePush& a, const absl::StatusOr<PushResult>& result) {
  absl::MutexLock lock(&mu_);
  counters_.gradients_pending -= a.contributors;
  counters_.gradients_forwarded += a.contributors;
  if (result.ok()) {
    known_version_ = std::max(known_version_, result->newest_version);
  } else {
    ++counters_.aggregates_refused;
  }
}

void Aggregator::ReportUndelivered(const AggregatePush& a) {
  absl::MutexLock lock(&mu_);
  counters_.gradients_pending -= a.contributors;
  counters_.gradients_dropped[std::string(DropReasonName(DropReason::kShutdown))] +=
      a.contributors;
}

void Aggregator::Shutdown() {
  board_.Shutdown();
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      shutdown_ = true;
      DiscardAll(DropReason::kShutdown);
      for (const AggregatePush& a : outbox_) {
        counters_.gradients_pending -= a.contributors;
        counters_.gradients_dropped[std::string(DropReasonName(DropReason::kShutdown))] +=
            a.contributors;
      }
      outbox_.clear();
    }
  }
  if (timer_ != nullptr) timer_->Stop();
}

AggregatorCounters Aggregator::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace hips
