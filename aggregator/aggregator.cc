#include "aggregator/aggregator.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "glog/logging.h"
#include "services/core/fedavg.h"
#include "services/core/gradient_accumulator.h"
#include "services/core/ids.h"

namespace hips {

absl::Status ValidateAggregatorOptions(const AggregatorOptions& o) {
  if (absl::Status s = ValidateMemberId(o.id, "the aggregator id (--id)"); !s.ok()) return s;
  if (o.expected_workers < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("an aggregator needs at least 1 worker, got ", o.expected_workers));
  }
  if (o.max_workers != 0 && o.max_workers < o.expected_workers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max workers must be at least the ", o.expected_workers, " expected, got ", o.max_workers));
  }
  if (o.max_batch_samples < 1 || o.max_batch_samples > GradientAccumulator::kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("max batch samples must be in [1, 2^31], got ", o.max_batch_samples));
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
  if (o.lease <= absl::ZeroDuration())
    return absl::InvalidArgumentError("the lease must be positive");
  if (o.coalesce_window < absl::ZeroDuration() || o.coalesce_window > absl::Seconds(10)) {
    return absl::InvalidArgumentError("the coalescing window must be in [0, 10s]");
  }
  return absl::OkStatus();
}

namespace {

// Distinct within a process (several aggregators in one test) and across
// restarts (its start time, µs).
int64_t NewEdgeEpoch() {
  static std::atomic<int64_t> last{0};
  int64_t now = FirstSequenceNumber();
  int64_t prev = last.load();
  while (!last.compare_exchange_weak(prev, std::max(now, prev + 1))) {
  }
  return std::max(now, prev + 1);
}

}  // namespace

Aggregator::Aggregator(AggregatorOptions options)
    : options_(std::move(options)),
      clock_(options_.clock),
      edge_epoch_(NewEdgeEpoch()),
      board_(clock_),
      members_(options_.lease, options_.expected_workers,
               options_.max_workers > 0 ? options_.max_workers : 2 * options_.expected_workers),
      next_sequence_(FirstSequenceNumber()) {
  timer_ = clock_->NewTimer([this] { return NextDeadline(); },
                            [this](absl::Time now) { CloseDue(now); });
}

Aggregator::~Aggregator() { Shutdown(); }

void Aggregator::Run(Completions completions) {
  for (auto& [done, answer] : completions) done(std::move(answer));
}

absl::Status Aggregator::Drop(DropReason reason, absl::Status why) {
  ++counters_.gradients_dropped[std::string(DropReasonName(reason))];
  return why;
}

VersionState Aggregator::Versions() const {
  return VersionState{version_, mode_, mode_since_, training_done_};
}

void Aggregator::AcceptGradient(GradientPush push, PushCallback done) {
  Completions completions;
  {
    absl::MutexLock lock(&mu_);
    // Backpressure: while this many aggregates wait for HQ, a push waits too
    // (without it, workers that outpace HQ in async mode fill the queue
    // with gradients that grow staler while they wait). A worker that
    // would not be let in is refused at once (Take), never held.
    if (!shutdown_ && static_cast<int>(outbox_.size()) >= options_.max_queued_aggregates &&
        members_.HasRoom(push.sender)) {
      parked_.emplace_back(std::move(push), std::move(done));
      return;
    }
    Take(push, std::move(done), &completions);
  }
  Run(std::move(completions));
  DeliverEdge();
}

absl::StatusOr<PushResult> Aggregator::AcceptGradient(GradientPush push) {
  absl::Notification answered;
  absl::StatusOr<PushResult> result;
  AcceptGradient(std::move(push), [&](absl::StatusOr<PushResult> answer) {
    result = std::move(answer);
    answered.Notify();
  });
  answered.WaitForNotification();
  return result;
}

void Aggregator::TakeParked(Completions* completions) {
  while (!parked_.empty() &&
         (shutdown_ || static_cast<int>(outbox_.size()) < options_.max_queued_aggregates)) {
    auto [push, done] = std::move(parked_.front());
    parked_.pop_front();
    Take(push, std::move(done), completions);
  }
}

void Aggregator::Take(GradientPush& push, PushCallback done, Completions* completions) {
  ++counters_.gradients_received;
  counters_.gradient_bytes_received += static_cast<int64_t>(push.values().bytes.bytes());
  auto answer = [&](absl::StatusOr<PushResult> a) {
    completions->emplace_back(std::move(done), std::move(a));
  };
  if (shutdown_) {
    return answer(
        Drop(DropReason::kShutdown, absl::UnavailableError("this aggregator is shutting down")));
  }
  if (version_ < 0) {
    // Not the worker's fault and not final: the worker retries.
    return answer(Drop(DropReason::kFutureVersion,
                       absl::UnavailableError("this aggregator has no weights from HQ yet")));
  }
  if (!members_.HasRoom(push.sender)) {
    return answer(Drop(DropReason::kMembershipFull, Full(push.sender)));
  }
  const absl::Time now = clock_->Now();
  const bool joined = members_.Touch(push.sender, now);
  MemberInfo& stats = worker_stats_[push.sender];
  stats.last_version = push.version;
  ++stats.gradients;
  stats.samples += push.samples;
  // A repeat of a push taken in before gets the first attempt's answer.
  switch (ledger_.Look(push.sender, push.sequence)) {
    case PushLedger::Seen::kPending:
      ++counters_.gradients_duplicate;
      if (!options_.ack_after_hq) {
        return answer(PushResult{push.version, /*duplicate=*/true, known_version_});
      }
      ledger_.Wait(ledger_.TicketOf(push.sender, push.sequence),
                   [done = std::move(done)](absl::StatusOr<PushResult> a) {
                     if (a.ok()) a->duplicate = true;
                     done(std::move(a));
                   });
      return;
    case PushLedger::Seen::kAnswered: {
      ++counters_.gradients_duplicate;
      absl::StatusOr<PushResult> first = ledger_.Answered(push.sender);
      if (first.ok()) first->duplicate = true;
      return answer(std::move(first));
    }
    case PushLedger::Seen::kSuperseded:
      ++counters_.gradients_duplicate;
      return answer(PushResult{push.version, /*duplicate=*/true, known_version_});
    case PushLedger::Seen::kNew:
      break;
  }
  if (joined) LOG(INFO) << push.sender << " joined (first heard of through a push)";
  absl::StatusOr<Admitted> admitted = Admit(push, now);
  if (std::vector<float>* left = push.received.values.adoptable; left != nullptr) {
    if (left->size() == num_floats_) spares_.Give(std::move(*left));
  }
  if (!admitted.ok()) return answer(admitted.status());
  if (admitted->answer.has_value()) return answer(*admitted->answer);
  if (!options_.ack_after_hq) {
    return answer(PushResult{push.version, /*duplicate=*/false, known_version_});
  }
  if (!ledger_.IsOpen(admitted->ticket)) {
    // Settled during its own admission: it closed an edge round.
    if (push.sequence > 0) return answer(ledger_.Answered(push.sender));
    return answer(PushResult{push.version, /*duplicate=*/false, known_version_});
  }
  ledger_.Wait(admitted->ticket, std::move(done));
}

absl::StatusOr<Aggregator::Admitted> Aggregator::Admit(const GradientPush& push, absl::Time now) {
  Contribution c;
  c.sender = push.sender;
  c.version = push.version;
  c.samples = push.samples;
  c.loss_sum = push.loss_sum;
  c.contributors = 1;
  // (Values read by a PushReceiver carry their sample count already.)
  c.scale = push.received.scaled ? 1.0f : static_cast<float>(push.samples);
  c.values = push.values();
  // Every gradient goes into an accumulator (round, batch or alone), whose
  // Add checks the values in the read it makes anyway.
  if (absl::Status s = ValidateContribution(c, num_floats_, /*check_values=*/false); !s.ok()) {
    return Drop(DropReason::kInvalid, s);
  }
  if (std::optional<Refusal> r = CheckVersion(Versions(), push.version, "gradient")) {
    return Drop(r->reason, r->status);
  }
  if (push.retry) {
    return EdgeMode() ? RefuseEdgeRetry(push, now) : AdmitRetry(push, c, now);
  }
  if (UsesRounds(mode_.mode)) return AdmitSync(push, c, now);
  return AdmitAsync(push, c, now);
}

absl::StatusOr<Aggregator::Admitted> Aggregator::AdmitRetry(const GradientPush& push,
                                                            const Contribution& c, absl::Time now) {
  // Its first attempt may have reached HQ through another aggregator: it
  // goes on alone, so that HQ can tell. In sync it counts for the round.
  if (UsesRounds(mode_.mode) && push.version == round_->version()) {
    MarkCovered(push.sender, push.version, now);
  }
  GradientAccumulator alone(num_floats_);
  if (absl::Status s = alone.Add(c.values, c.scale, c.samples, c.loss_sum, 1); !s.ok()) {
    return Drop(DropReason::kInvalid, s);
  }
  const ContributorRef ref = Open(push);
  Enqueue(&alone, push.version, {}, {ref}, /*single=*/true);
  ++counters_.gradients_sent_alone;
  MaybeCompleteRound();
  return Admitted{ref.ticket, std::nullopt};
}

void Aggregator::MarkCovered(const std::string& sender, int64_t version, absl::Time now) {
  if (round_->CloseIfDue(now)) EmitRound();
  Contribution mark;
  mark.sender = sender;
  mark.members = {sender};
  mark.version = version;
  mark.contributors = 0;
  DropReason ignored;
  (void)round_->Add(mark, &ignored, now);
}

absl::StatusOr<Aggregator::Admitted> Aggregator::RefuseEdgeRetry(const GradientPush& push,
                                                                 absl::Time now) {
  // Its first attempt may have moved another aggregator's copy (or this
  // one's, in a round that closed since): applying it again here could count
  // it twice. It is refused, and its round here waits for it no more.
  if (round_->CloseIfDue(now)) EmitRound();
  if (push.version == round_->version() && push.edge_round == edge_round_) {
    MarkCovered(push.sender, push.version, now);
    MaybeCompleteRound();
  }
  return Drop(DropReason::kEdgeRetry,
              absl::FailedPreconditionError(absl::StrCat(
                  "a retried delta of version ", push.version, ", edge round ", push.edge_round,
                  ", is not applied with edge rounds (its first attempt may be applied already)")));
}

absl::StatusOr<Aggregator::Admitted> Aggregator::AdmitSync(const GradientPush& push,
                                                           const Contribution& c, absl::Time now) {
  // A round past its deadline closes (and is sent on) before a late
  // gradient is looked at.
  if (round_->CloseIfDue(now)) EmitRound();
  if (push.version == round_->version() && push.edge_round != edge_round_) {
    // A delta on another copy of this version's weights (an edge round
    // closed since, or another aggregator's).
    const bool stale = push.edge_round < edge_round_;
    return Drop(stale ? DropReason::kStaleVersion : DropReason::kFutureVersion,
                absl::FailedPreconditionError(absl::StrCat(
                    "a delta computed on edge round ", push.edge_round, " of version ",
                    push.version, "; this aggregator's copy is at edge round ", edge_round_)));
  }
  if (!participants_.empty() && push.version == round_->version() &&
      !std::binary_search(participants_.begin(), participants_.end(), push.sender)) {
    return Drop(DropReason::kNotDrawn,
                absl::FailedPreconditionError(
                    absl::StrCat(push.sender, " was not drawn for the round of version ",
                                 push.version, " (--participation=", mode_.participation, ")")));
  }
  const bool first = round_->received() == 0;
  DropReason reason;
  absl::StatusOr<SyncRound::AddOutcome> outcome = round_->Add(c, &reason, now);
  if (!outcome.ok()) return Drop(reason, outcome.status());
  if (*outcome == SyncRound::AddOutcome::kDuplicate) {
    // This worker's gradient of this version is in already (a retry, or
    // the worker restarted and computed it again): not summed twice.
    ++counters_.gradients_duplicate;
    return Admitted{0, PushResult{push.version, /*duplicate=*/true, known_version_}};
  }
  const ContributorRef ref = Open(push);
  round_refs_.push_back(ref);
  if (round_->state() == SyncRound::State::kClosed) {
    EmitRound();
  } else {
    MaybeCompleteRound();
    if (first && round_->state() == SyncRound::State::kOpen) timer_->Poke();
  }
  return Admitted{ref.ticket, std::nullopt};
}

absl::StatusOr<Aggregator::Admitted> Aggregator::AdmitAsync(const GradientPush& push,
                                                            const Contribution& c, absl::Time now) {
  // HQ is at least at known_version_, so a gradient this stale is refused
  // there for sure: drop it here and save the hop.
  if (std::optional<Refusal> r =
          CheckStaleness(mode_, push.version, known_version_ - push.version, "gradient")) {
    return Drop(r->reason, r->status);
  }
  // A second gradient of a sender: send the batch so far, start another.
  if (batch_->HasSender(push.sender)) EmitBatch();
  const bool first = batch_->empty();
  if (absl::Status s = batch_->Add(c, now); !s.ok()) return Drop(DropReason::kInvalid, s);
  const ContributorRef ref = Open(push);
  batch_refs_.push_back(ref);
  if (batch_->full() || options_.coalesce_window == absl::ZeroDuration()) {
    EmitBatch();
  } else if (first) {
    timer_->Poke();  // the batch's window now runs
  }
  return Admitted{ref.ticket, std::nullopt};
}

ContributorRef Aggregator::Open(const GradientPush& push) {
  ++counters_.gradients_accepted;
  ++counters_.gradients_pending;
  ContributorRef ref{push.sender, push.sequence, push.version, push.step};
  ref.ticket = ledger_.Open(push.sender, push.sequence);
  return ref;
}

void Aggregator::Settle(const ContributorRef& ref, const absl::StatusOr<PushResult>& result,
                        Completions* completions) {
  absl::StatusOr<PushResult> own = result;
  if (own.ok()) own->version = ref.version;
  for (PushCallback& done : ledger_.Settle(ref.ticket, own)) {
    completions->emplace_back(std::move(done), own);
  }
}

absl::Status Aggregator::Full(const std::string& worker) const {
  return absl::ResourceExhaustedError(absl::StrCat(
      "aggregator ", options_.id, " is full: ", members_.live_count(), " live workers of at most ",
      members_.max_members(), " (--max_workers); ", worker, " was not let in"));
}

absl::StatusOr<HeartbeatAnswer> Aggregator::Heartbeat(const std::string& worker,
                                                      int64_t incarnation, bool leaving) {
  HeartbeatAnswer answer;
  {
    absl::MutexLock lock(&mu_);
    if (!leaving && !members_.HasRoom(worker)) {
      LOG_EVERY_N(WARNING, 100) << Full(worker) << " (every 100th is logged)";
      return Full(worker);
    }
    if (leaving) {
      if (members_.IsLive(worker)) LOG(INFO) << worker << " left";
      members_.Leave(worker);
      worker_stats_.erase(worker);  // per-member state lives as long as the lease
      MaybeCompleteRound();
    } else if (members_.Touch(worker, clock_->Now(), incarnation)) {
      LOG(INFO) << worker << " joined (incarnation " << incarnation << ")";
      timer_->Poke();  // its lease may be the next to run out
    }
    answer.lease = options_.lease;
    answer.version = known_version_;
    if (auto it = data_positions_.find(worker); it != data_positions_.end()) {
      answer.data_positions[worker] = it->second;
    }
  }
  if (leaving) DeliverEdge();  // (its leaving may have completed a round)
  return answer;
}

void Aggregator::EndForming() {
  {
    absl::MutexLock lock(&mu_);
    if (!members_.forming()) return;
    LOG(INFO) << "joining a cluster that is already training: rounds need only live workers";
    members_.EndForming();
    MaybeCompleteRound();
  }
  DeliverEdge();
}

std::shared_ptr<const WeightsSnapshot> Aggregator::HqWeights() const {
  absl::MutexLock lock(&mu_);
  return hq_weights_;
}

void Aggregator::SetDataPositions(std::map<std::string, int64_t> positions) {
  absl::MutexLock lock(&mu_);
  data_positions_ = std::move(positions);
}

bool Aggregator::RoundCovered() const {
  if (participants_.empty() && !version_members_.has_value()) {
    return members_.Covers(round_->covered());
  }
  // Every drawn worker (with edge rounds: every worker of the version's
  // start) that is still live is in. (With none left and none in, the round
  // closes empty: this aggregator is done with the version.)
  for (const std::string& id : participants_.empty() ? *version_members_ : participants_) {
    if (members_.IsLive(id) && !round_->covered().contains(id)) return false;
  }
  return true;
}

void Aggregator::MaybeCompleteRound() {
  if (round_ == nullptr || round_->state() != SyncRound::State::kOpen) return;
  if (!RoundCovered()) return;
  round_->Close();
  EmitRound();
}

void Aggregator::Enqueue(GradientAccumulator* acc, int64_t version,
                         std::map<int64_t, int64_t> versions, std::vector<ContributorRef> refs,
                         bool single) {
  AggregatePush out;
  out.version = version;
  out.total_samples = acc->total_samples();
  out.contributors = acc->contributors();
  out.loss_sum = acc->loss_sum();
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
  }
  out.single = single;
  Queue(std::move(out));
}

void Aggregator::Queue(AggregatePush out) {
  out.aggregator = options_.id;
  out.sequence = next_sequence_++;
  outbox_.push_back(std::move(out));
  ++counters_.rounds_closed;
}

void Aggregator::Encode(AggregatePush* a) {
  // A retried gradient sent alone goes uncompressed: HQ applies it only if it
  // has not seen it, and the error-feedback residual (other gradients'
  // unsent parts) must not ride on something that may be dropped.
  if (a->single || a->contributors == 0) return;
  absl::MutexLock lock(&encode_mu_);
  if (compressor_ == nullptr || compressor_->num_floats() != a->sum.size()) return;
  a->encoded.encoding = compressor_->options().encoding;
  a->encoded.nonzeros = compressor_->Encode(a->sum, &a->encoded.bytes);
}

void Aggregator::EmitRound() {
  if (EdgeMode() && round_->version() == version_) {
    if (edge_round_ + 1 < mode_.edge_rounds) {
      AdvanceEdge();
    } else {
      EmitEdgeAggregate();
    }
    return;
  }
  Enqueue(round_->mutable_accumulator(), round_->version(), {}, std::move(round_refs_));
  round_refs_.clear();
}

bool Aggregator::EdgeMode() const {
  return mode_.mode == Mode::kFedAvg && mode_.edge_rounds > 1 && !training_done_;
}

void Aggregator::AdvanceEdge() {
  GradientAccumulator* acc = round_->mutable_accumulator();
  const int64_t n = acc->total_samples();
  auto next = std::make_shared<WeightsSnapshot>(*edge_copy_);
  ApplyEdgeRound(acc->sum(), n, edge_copy_->layout.buffer_ranges(), absl::MakeSpan(next->weights));
  next->edge_round = edge_round_ + 1;
  edge_samples_ += n;
  edge_loss_ += acc->loss_sum();
  // The round's pushes are in the copy: acknowledged here.
  const int64_t k = static_cast<int64_t>(round_refs_.size());
  edge_pushes_ += k;
  for (const ContributorRef& ref : round_refs_) {
    Settle(ref, PushResult{ref.version, /*duplicate=*/false, known_version_}, &edge_acks_);
  }
  round_refs_.clear();
  counters_.gradients_pending -= k;
  counters_.gradients_edge_applied += k;
  ++counters_.edge_rounds_closed;
  edge_round_ = next->edge_round;
  edge_copy_ = next;
  edge_publish_ = std::move(next);
  edge_pending_.store(true);
  round_->Open(version_);
  // Nobody may be left to wait for (every drawn worker died): the next
  // round closes at once, and so on to the aggregate (at most E rounds).
  MaybeCompleteRound();
}

void Aggregator::EmitEdgeAggregate() {
  GradientAccumulator* acc = round_->mutable_accumulator();
  if (acc->contributors() == 0) {
    // Nobody pushed in the last round: an empty aggregate says this
    // aggregator is done with the version (the earlier rounds' work, if
    // any, has no pushes left to carry it: HQ's aggregates count
    // gradients).
    Enqueue(acc, round_->version(), {}, std::move(round_refs_));
    round_refs_.clear();
    return;
  }
  const std::vector<FloatRange> buffers = edge_copy_->layout.buffer_ranges();
  const int64_t n = acc->total_samples();
  AggregatePush out;
  out.version = version_;
  out.contributors = acc->contributors();
  out.total_samples = edge_samples_ + n;
  out.loss_sum = edge_loss_ + acc->loss_sum();
  out.edge_pushes = edge_pushes_;
  out.contributor_list = std::move(round_refs_);
  round_refs_.clear();
  out.sum = acc->TakeSum();
  if (std::vector<float> spare = spares_.TakeIfKept(num_floats_); !spare.empty()) {
    acc->GiveBuffer(std::move(spare));
  }
  std::vector<float> copy = edge_copy_->weights;
  ApplyEdgeRound(out.sum, n, buffers, absl::MakeSpan(copy));
  EdgeAggregateInto(hq_weights_->weights, copy, out.total_samples, buffers,
                    absl::MakeSpan(out.sum));
  Queue(std::move(out));
}

void Aggregator::DeliverEdge() {
  if (!edge_pending_.load()) return;  // (every push outside edge rounds)
  Completions acks;
  {
    absl::MutexLock publish_lock(&publish_mu_);
    std::shared_ptr<const WeightsSnapshot> copy;
    {
      absl::MutexLock lock(&mu_);
      acks.swap(edge_acks_);
      copy = std::move(edge_publish_);
      edge_publish_ = nullptr;
      edge_pending_.store(false);
    }
    // (Under publish_mu_: HQ's next weights, or another incarnation's, are
    // published after this copy, never before.)
    if (copy != nullptr) board_.Publish(std::move(copy));
  }
  Run(std::move(acks));
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

void Aggregator::DiscardAll(DropReason reason, Completions* completions) {
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
                               : absl::FailedPreconditionError(
                                     absl::StrCat("dropped before it was sent on (", name, ")"));
  for (const ContributorRef& ref : refs) Settle(ref, why, completions);
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
  Completions completions;
  absl::ReleasableMutexLock publish_lock(&publish_mu_);
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
      DiscardAll(DropReason::kHqRestarted, &completions);
      known_version_ = -1;
    }
    incarnation_ = snapshot->incarnation;
    hq_weights_ = snapshot;
    const size_t num_floats = snapshot->weights.size();
    if (round_ == nullptr || num_floats != num_floats_) {
      // HQ trains another model now: what was summed for the old one is void.
      DiscardAll(DropReason::kInvalid, &completions);
      num_floats_ = num_floats;
      const int quorum =
          options_.quorum_workers == 0 ? options_.expected_workers : options_.quorum_workers;
      // Complete when every live worker is in (MaybeCompleteRound).
      round_ = std::make_unique<SyncRound>(num_floats, /*expected_contributions=*/0, quorum,
                                           options_.round_deadline);
      batch_ = std::make_unique<CoalescingBatch>(num_floats, options_.expected_workers,
                                                 options_.coalesce_window);
      absl::MutexLock encode_lock(&encode_mu_);
      compressor_ = options_.compression.encoding == Encoding::kFp32
                        ? nullptr
                        : std::make_unique<Compressor>(options_.compression, num_floats,
                                                       snapshot->layout.buffer_ranges());
    }
    const bool mode_changed = snapshot->mode != mode_ || snapshot->mode_since != mode_since_;
    if (snapshot->training_done) {
      DiscardAll(DropReason::kUnfinished, &completions);
    } else if (mode_changed) {
      DiscardAll(DropReason::kModeChanged, &completions);
      if (version_ >= 0) {
        LOG(INFO) << "mode " << DescribeMode(snapshot->mode) << " from version "
                  << snapshot->mode_since;
      }
    } else if (UsesRounds(mode_.mode)) {
      // HQ moved on without this round (it closed at HQ's deadline).
      DiscardAll(DropReason::kSuperseded, &completions);
    }
    version_ = snapshot->version;
    mode_ = snapshot->mode;
    mode_since_ = snapshot->mode_since;
    training_done_ = snapshot->training_done;
    known_version_ = std::max(known_version_, version_);
    // The round opens before any worker can see its weights, so no gradient
    // of this version can arrive before its round exists.
    if (!training_done_ && UsesRounds(mode_.mode)) {
      round_->Open(version_);
    } else {
      round_->Open(-1);  // nothing can join it: versions are >= 0
    }
    // fedavg with participation: this round's workers are drawn among the
    // live ones, once the tier is formed (until then everyone takes part),
    // and told to the workers with the weights they pull.
    participants_.clear();
    if (!training_done_ && mode_.mode == Mode::kFedAvg && mode_.participation < 1.0 &&
        !members_.forming()) {
      participants_ = DrawParticipants(members_.Live(), mode_.participation, version_, options_.id);
    }
    // Edge rounds start afresh from HQ's weights (a copy of the previous
    // version not yet published never will be), in this aggregator's
    // epoch, for the workers live now.
    edge_round_ = 0;
    edge_samples_ = 0;
    edge_loss_ = 0;
    edge_pushes_ = 0;
    edge_publish_ = nullptr;
    version_members_.reset();
    if (EdgeMode() && !members_.forming()) version_members_ = members_.Live();
    if (!participants_.empty() || EdgeMode()) {
      auto served = std::make_shared<WeightsSnapshot>(*snapshot);
      served->participants = participants_;
      if (EdgeMode()) served->edge_epoch = edge_epoch_;
      snapshot = std::move(served);
    }
    edge_copy_ = snapshot;
  }
  board_.Publish(std::move(snapshot));
  publish_lock.Release();
  Run(std::move(completions));
  DeliverEdge();
}

absl::Time Aggregator::NextDeadline() const {
  absl::MutexLock lock(&mu_);
  const absl::Time expiry = members_.NextExpiry();
  if (round_ == nullptr) return expiry;
  return std::min({round_->CloseAt(), batch_->CloseAt(), expiry});
}

void Aggregator::CloseDue(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    for (const std::string& id : members_.Expire(now)) worker_stats_.erase(id);
    if (round_ == nullptr) return;
    // (The lambdas run here, with mu_ held.)
    CloseRoundIfDue(
        round_.get(), now, "gradients",
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { MaybeCompleteRound(); },
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { EmitRound(); });
    if (now >= batch_->CloseAt()) EmitBatch();
  }
  DeliverEdge();
}

std::optional<AggregatePush> Aggregator::NextAggregate() {
  std::optional<AggregatePush> out;
  Completions completions;
  {
    absl::MutexLock lock(&mu_);
    auto ready = [this]()
                     ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return shutdown_ || !outbox_.empty(); };
    mu_.Await(absl::Condition(&ready));
    if (shutdown_) return std::nullopt;
    out = std::move(outbox_.front());
    outbox_.pop_front();
    TakeParked(&completions);  // there is room again
  }
  Run(std::move(completions));
  DeliverEdge();  // (a parked push may have closed an edge round)
  Encode(&*out);
  return out;
}

void Aggregator::ReportForwarded(const AggregatePush& a, const absl::StatusOr<PushResult>& result) {
  Completions completions;
  {
    absl::MutexLock lock(&mu_);
    counters_.gradients_pending -= a.contributors;
    counters_.gradients_forwarded += a.contributors;
    counters_.aggregate_bytes_sent += static_cast<int64_t>(a.values().bytes.bytes());
    if (result.ok()) {
      known_version_ = std::max(known_version_, result->newest_version);
    } else {
      ++counters_.aggregates_refused;
    }
    for (const ContributorRef& ref : a.contributor_list) Settle(ref, result, &completions);
  }
  Run(std::move(completions));
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
  Completions completions;
  {
    absl::MutexLock lock(&mu_);
    counters_.gradients_pending -= a.contributors;
    counters_.gradients_dropped[std::string(DropReasonName(DropReason::kShutdown))] +=
        a.contributors;
    for (const ContributorRef& ref : a.contributor_list) {
      Settle(ref, absl::UnavailableError("this aggregator shut down before HQ answered"),
             &completions);
    }
  }
  Run(std::move(completions));
}

void Aggregator::Shutdown() {
  board_.Shutdown();
  Completions completions;
  {
    absl::MutexLock lock(&mu_);
    if (!shutdown_) {
      shutdown_ = true;
      // Applied at the edge already: their answers stand.
      for (auto& ack : edge_acks_) completions.push_back(std::move(ack));
      edge_acks_.clear();
      TakeParked(&completions);  // each counted, and answered UNAVAILABLE
      DiscardAll(DropReason::kShutdown, &completions);
      const absl::Status down = absl::UnavailableError("this aggregator is shutting down");
      for (const AggregatePush& a : outbox_) {
        for (const ContributorRef& ref : a.contributor_list) Settle(ref, down, &completions);
        counters_.gradients_pending -= a.contributors;
        counters_.gradients_dropped[std::string(DropReasonName(DropReason::kShutdown))] +=
            a.contributors;
      }
      outbox_.clear();
      // The pushes of an aggregate on its way to HQ are answered now too:
      // nothing waits for a report that may never come.
      for (PushCallback& done : ledger_.SettleAll(down))
        completions.emplace_back(std::move(done), down);
    }
  }
  Run(std::move(completions));
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
