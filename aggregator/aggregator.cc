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
  if (absl::Status s = ValidateCompressionOptions(o.compression); !s.ok()) return s;
  if (o.max_queued_aggregates < 1) {
    return absl::InvalidArgumentError("at least 1 aggregate must be allowed to queue");
  }
  if (o.lease <= absl::ZeroDuration()) return absl::InvalidArgumentError("the lease must be positive");
  if (o.coalesce_window < absl::ZeroDuration() || o.coalesce_window > absl::Seconds(10)) {
    return absl::InvalidArgumentError("the coalescing window must be in [0, 10s]");
  }
  return absl::OkStatus();
}

Aggregator::Aggregator(AggregatorOptions options)
    : options_(std::move(options)),
      members_(options_.lease, options_.expected_workers),
      next_sequence_(FirstSequenceNumber()) {
  timer_ = std::make_unique<DeadlineTimer>([this] { return NextDeadline(); },
                                           [this](absl::Time now) { CloseDue(now); });
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
  counters_.gradient_bytes_received += static_cast<int64_t>(push.values().bytes.bytes());
  if (shutdown_) {
    return Drop(DropReason::kShutdown, absl::UnavailableError("this aggregator is shutting down"));
  }
  if (version_ < 0) {
    // Not the worker's fault and not final: the worker retries.
    return Drop(DropReason::kFutureVersion,
                absl::UnavailableError("this aggregator has no weights from HQ yet"));
  }
  const bool joined = members_.Touch(push.sender, now);
  MemberInfo& stats = worker_stats_[push.sender];
  stats.last_version = push.version;
  ++stats.gradients;
  stats.samples += push.samples;
  // A repeat of a push this aggregator already has: the same answer, once
  // there is one.
  if (auto it = ticket_of_.find({push.sender, push.sequence});
      push.sequence > 0 && it != ticket_of_.end()) {
    ++counters_.gradients_duplicate;
    std::shared_ptr<Ticket> ticket = tickets_.at(it->second);
    if (!options_.ack_after_hq) return PushResult{push.version, /*duplicate=*/true, known_version_};
    return AwaitTicket(ticket, /*duplicate=*/true);
  }
  if (auto it = answered_.find(push.sender);
      push.sequence > 0 && it != answered_.end() && it->second.first == push.sequence) {
    ++counters_.gradients_duplicate;
    absl::StatusOr<PushResult> result = it->second.second;
    if (result.ok()) result->duplicate = true;
    return result;
  }
  if (repeats_.IsRepeat(push.sender, push.sequence)) {
    ++counters_.gradients_duplicate;
    return PushResult{push.version, /*duplicate=*/true, known_version_};
  }
  if (joined) LOG(INFO) << push.sender << " joined (first heard of through a push)";
  absl::StatusOr<std::shared_ptr<Ticket>> ticket = Admit(push, now);
  if (std::vector<float>* left = push.received.values.adoptable; left != nullptr) {
    if (left->size() == num_floats_) spares_.Give(std::move(*left));
  }
  if (!ticket.ok()) return ticket.status();
  if (!options_.ack_after_hq && !(*ticket)->done) {
    return PushResult{push.version, /*duplicate=*/false, known_version_};
  }
  return AwaitTicket(*ticket, /*duplicate=*/false);
}

absl::StatusOr<std::shared_ptr<Aggregator::Ticket>> Aggregator::Admit(const GradientPush& push,
                                                                      absl::Time now) {
  Contribution c;
  c.sender = push.sender;
  c.version = push.version;
  c.samples = push.samples;
  c.loss_sum = push.loss_sum;
  c.contributors = 1;
  // (Values read with ReadChunkedScaled carry their sample count already.)
  c.scale = push.received.scaled ? 1.0f : static_cast<float>(push.samples);
  c.values = push.values();
  // Every gradient goes into an accumulator (round, batch or alone), whose
  // Add checks the values in the read it makes anyway.
  if (absl::Status s = ValidateContribution(c, num_floats_, /*check_values=*/false); !s.ok()) {
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
  ContributorRef ref{push.sender, push.sequence, push.version, push.step};

  if (push.retry) {
    // Its first attempt may have reached HQ through another aggregator: it
    // goes on alone, so that HQ can tell. In sync it counts for the round.
    if (mode_.mode == Mode::kSync && push.version == round_->version()) {
      if (round_->CloseIfDue(now)) EmitRound();
      Contribution mark;
      mark.sender = push.sender;
      mark.members = {push.sender};
      mark.version = push.version;
      mark.contributors = 0;
      DropReason ignored;
      (void)round_->Add(mark, &ignored, now);
    }
    GradientAccumulator alone(num_floats_);
    if (absl::Status s = alone.Add(c.values, c.scale, c.samples, c.loss_sum, 1); !s.ok()) {
      return Drop(DropReason::kInvalid, s);
    }
    repeats_.Record(push.sender, push.sequence);
    std::shared_ptr<Ticket> ticket = NewTicket(push, &ref);
    Enqueue(&alone, push.version, {}, {ref}, /*single=*/true);
    ++counters_.gradients_sent_alone;
    MaybeCompleteRound();
    return ticket;
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
      // This worker's gradient of this version is in already (a retry, or
      // the worker restarted and computed it again): not summed twice.
      ++counters_.gradients_duplicate;
      auto settled = std::make_shared<Ticket>();
      settled->done = true;
      settled->result = PushResult{push.version, /*duplicate=*/true, known_version_};
      return settled;
    }
    repeats_.Record(push.sender, push.sequence);
    std::shared_ptr<Ticket> ticket = NewTicket(push, &ref);
    round_refs_.push_back(ref);
    if (round_->state() == SyncRound::State::kClosed) {
      EmitRound();
    } else {
      MaybeCompleteRound();
      if (first && round_->state() == SyncRound::State::kOpen) timer_->Poke();
    }
    return ticket;
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
  std::shared_ptr<Ticket> ticket = NewTicket(push, &ref);
  batch_refs_.push_back(ref);
  if (batch_->full() || options_.coalesce_window == absl::ZeroDuration()) {
    EmitBatch();
  } else if (first) {
    timer_->Poke();  // the batch's window now runs
  }
  return ticket;
}

std::shared_ptr<Aggregator::Ticket> Aggregator::NewTicket(const GradientPush& push,
                                                          ContributorRef* ref) {
  ++counters_.gradients_accepted;
  ++counters_.gradients_pending;
  auto ticket = std::make_shared<Ticket>();
  ref->ticket = next_ticket_++;
  tickets_[ref->ticket] = ticket;
  if (push.sequence > 0) ticket_of_[{push.sender, push.sequence}] = ref->ticket;
  return ticket;
}

absl::StatusOr<PushResult> Aggregator::AwaitTicket(const std::shared_ptr<Ticket>& ticket,
                                                   bool duplicate) {
  auto settled = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return ticket->done || shutdown_; };
  mu_.Await(absl::Condition(&settled));
  if (!ticket->done) return absl::UnavailableError("this aggregator is shutting down");
  absl::StatusOr<PushResult> result = ticket->result;
  if (result.ok() && duplicate) result->duplicate = true;
  return result;
}

void Aggregator::Settle(const ContributorRef& ref, const absl::StatusOr<PushResult>& result) {
  auto it = tickets_.find(ref.ticket);
  if (it == tickets_.end()) return;
  it->second->done = true;
  it->second->result = result;
  if (result.ok()) it->second->result->version = ref.version;
  if (ref.sequence > 0) {
    answered_[ref.worker] = {ref.sequence, it->second->result};
    ticket_of_.erase({ref.worker, ref.sequence});
  }
  tickets_.erase(it);
}

HeartbeatAnswer Aggregator::Heartbeat(const std::string& worker, int64_t incarnation,
                                      bool leaving, absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (leaving) {
    if (members_.IsLive(worker)) LOG(INFO) << worker << " left";
    members_.Leave(worker);
    MaybeCompleteRound();
  } else if (members_.Touch(worker, now, incarnation)) {
    LOG(INFO) << worker << " joined (incarnation " << incarnation << ")";
    timer_->Poke();  // its lease may be the next to run out
  }
  HeartbeatAnswer answer;
  answer.lease = options_.lease;
  answer.version = known_version_;
  if (auto it = data_positions_.find(worker); it != data_positions_.end()) {
    answer.data_positions[worker] = it->second;
  }
  return answer;
}

void Aggregator::EndForming() {
  absl::MutexLock lock(&mu_);
  if (!members_.forming()) return;
  LOG(INFO) << "joining a cluster that is already training: rounds need only live workers";
  members_.EndForming();
  MaybeCompleteRound();
}

void Aggregator::SetDataPositions(std::map<std::string, int64_t> positions) {
  absl::MutexLock lock(&mu_);
  data_positions_ = std::move(positions);
}

void Aggregator::MaybeCompleteRound() {
  if (round_ == nullptr || round_->state() != SyncRound::State::kOpen) return;
  if (!members_.Covers(round_->covered())) return;
  round_->Close();
  EmitRound();
}

void Aggregator::Enqueue(GradientAccumulator* acc, int64_t version,
                         std::map<int64_t, int64_t> versions, std::vector<ContributorRef> refs,
                         bool single) {
  AggregatePush out;
  out.aggregator = options_.id;
  out.version = version;
  out.total_samples = acc->total_samples();
  out.contributors = acc->contributors();
  out.loss_sum = acc->loss_sum();
  out.sequence = next_sequence_++;
  out.contributor_versions = std::move(versions);
  out.contributor_list = std::move(refs);
  // An empty round (its gradients all went on alone) only says this
  // aggregator is done with `version`. Otherwise the sum moves into the
  // aggregate (no copy): its accumulator is done.
  if (out.contributors > 0) {
    out.sum = acc->TakeSum();
    if (!single) {  // (a single's accumulator is temporary)
      if (std::vector<float> spare = spares_.TakeIfKept(num_floats_); !spare.empty()) {
        acc->GiveBuffer(std::move(spare));
      }
    }
    // A retried gradient sent alone goes uncompressed: HQ applies it only if
    // it has not seen it, and the error-feedback residual (other gradients'
    // unsent parts) must not ride on something that may be dropped.
    if (compressor_ != nullptr && !single) {
      out.encoded.encoding = compressor_->options().encoding;
      out.encoded.nonzeros = compressor_->Encode(out.sum, &out.encoded.bytes);
    }
  }
  out.single = single;
  outbox_.push_back(std::move(out));
  ++counters_.rounds_closed;
}

void Aggregator::EmitRound() {
  Enqueue(round_->mutable_accumulator(), round_->version(), {}, std::move(round_refs_));
  round_refs_.clear();
}

void Aggregator::EmitBatch() {
  if (batch_->empty()) return;
  // One version: the plain form of an aggregate.
  std::map<int64_t, int64_t> versions;
  if (batch_->versions().size() > 1) versions = batch_->versions();
  Enqueue(batch_->mutable_accumulator(), batch_->oldest_version(), std::move(versions),
          std::move(batch_refs_));
  batch_refs_.clear();
  batch_->Reset();
}

void Aggregator::DiscardAll(DropReason reason) {
  std::vector<ContributorRef> refs;
  if (round_ != nullptr && round_->state() == SyncRound::State::kOpen) {
    refs = std::move(round_refs_);
  }
  round_refs_.clear();
  if (batch_ != nullptr) batch_->Reset();
  refs.insert(refs.end(), batch_refs_.begin(), batch_refs_.end());
  batch_refs_.clear();
  if (refs.empty()) return;
  const std::string name(DropReasonName(reason));
  const absl::Status why = reason == DropReason::kShutdown
                               ? absl::UnavailableError("this aggregator is shutting down")
                               : absl::FailedPreconditionError(absl::StrCat(
                                     "dropped before it was sent on (", name, ")"));
  for (const ContributorRef& ref : refs) Settle(ref, why);
  const int64_t n = static_cast<int64_t>(refs.size());
  counters_.gradients_dropped[name] += n;
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
    const bool hq_restarted = version_ >= 0 && snapshot->incarnation != incarnation_;
    if (version_ >= 0 && !hq_restarted &&
        (snapshot->version < version_ ||
         (snapshot->version == version_ && (training_done_ || !snapshot->training_done)))) {
      return;  // not newer
    }
    if (hq_restarted) {
      // HQ restarted (from a checkpoint, possibly older than what is here):
      // its versions start a new line, and nothing summed for the old one
      // can be applied.
      LOG(WARNING) << "HQ restarted: incarnation " << snapshot->incarnation << " at version "
                   << snapshot->version << " (was at version " << version_ << ")";
      DiscardAll(DropReason::kHqRestarted);
      known_version_ = -1;
    }
    incarnation_ = snapshot->incarnation;
    const size_t num_floats = snapshot->weights.size();
    if (round_ == nullptr || num_floats != num_floats_) {
      // HQ trains another model now: what was summed for the old one is void.
      DiscardAll(DropReason::kInvalid);
      num_floats_ = num_floats;
      const int quorum =
          options_.quorum_workers == 0 ? options_.expected_workers : options_.quorum_workers;
      // Complete when every live worker is in (MaybeCompleteRound).
      round_ = std::make_unique<SyncRound>(num_floats, /*expected_contributions=*/0, quorum,
                                           options_.round_deadline);
      batch_ = std::make_unique<CoalescingBatch>(num_floats, options_.expected_workers,
                                                 options_.coalesce_window);
      compressor_ = options_.compression.encoding == Encoding::kFp32
                        ? nullptr
                        : std::make_unique<Compressor>(options_.compression, num_floats);
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
  const absl::Time expiry = members_.NextExpiry();
  if (round_ == nullptr) return expiry;
  return std::min({round_->CloseAt(), batch_->CloseAt(), expiry});
}

void Aggregator::CloseDue(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (shutdown_) return;
  for (const std::string& worker : members_.Expire(now)) {
    LOG(WARNING) << worker << "'s lease expired; rounds go on without it";
  }
  if (round_ == nullptr) return;
  MaybeCompleteRound();
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
  counters_.aggregate_bytes_sent += static_cast<int64_t>(a.values().bytes.bytes());
  if (result.ok()) {
    known_version_ = std::max(known_version_, result->newest_version);
  } else {
    ++counters_.aggregates_refused;
  }
  for (const ContributorRef& ref : a.contributor_list) Settle(ref, result);
}

void Aggregator::RecycleSum(std::vector<float> sum) {
  absl::MutexLock lock(&mu_);
  if (sum.size() == num_floats_) spares_.Give(std::move(sum));
}

std::vector<float> Aggregator::SpareBuffer() {
  absl::MutexLock lock(&mu_);
  return spares_.TakeIfKept(num_floats_);
}

void Aggregator::ReportUndelivered(const AggregatePush& a) {
  absl::MutexLock lock(&mu_);
  counters_.gradients_pending -= a.contributors;
  counters_.gradients_dropped[std::string(DropReasonName(DropReason::kShutdown))] +=
      a.contributors;
  for (const ContributorRef& ref : a.contributor_list) {
    Settle(ref, absl::UnavailableError("this aggregator shut down before HQ answered"));
  }
}

void Aggregator::Shutdown() {
  board_.Shutdown();
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      shutdown_ = true;
      DiscardAll(DropReason::kShutdown);
      for (const AggregatePush& a : outbox_) {
        for (const ContributorRef& ref : a.contributor_list) {
          Settle(ref, absl::UnavailableError("this aggregator is shutting down"));
        }
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
  AggregatorCounters c = counters_;
  c.live_workers = members_.Live();
  for (const std::string& id : c.live_workers) {
    MemberInfo& info = c.workers.emplace_back();
    if (auto it = worker_stats_.find(id); it != worker_stats_.end()) info = it->second;
    info.id = id;
    info.last_seen = members_.LastSeen(id);
  }
  c.forming = members_.forming();
  return c;
}

AggregatorStatus Aggregator::status() const {
  AggregatorStatus s;
  s.id = options_.id;
  std::shared_ptr<const WeightsSnapshot> latest = LatestWeights();
  s.version = latest == nullptr ? -1 : latest->version;
  s.counters = counters();
  return s;
}

}  // namespace hips
