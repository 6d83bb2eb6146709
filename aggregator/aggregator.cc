#include "aggregator/aggregator.h"

#include <algorithm>
#include <atomic>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "glog/logging.h"
#include "services/core/gradient_accumulator.h"
#include "services/core/ids.h"

namespace hips {

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
  DeliverApplied();
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
  if (AnswerRepeat(push, &done, completions)) return;
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
    // Settled during its own admission: it closed a round applied here.
    if (push.sequence > 0) return answer(ledger_.Answered(push.sender));
    return answer(PushResult{push.version, /*duplicate=*/false, known_version_});
  }
  ledger_.Wait(admitted->ticket, std::move(done));
}

bool Aggregator::AnswerRepeat(const GradientPush& push, PushCallback* done,
                              Completions* completions) {
  // A repeat of a push taken in before gets the first attempt's answer.
  switch (ledger_.Look(push.sender, push.sequence)) {
    case PushLedger::Seen::kNew:
      return false;
    case PushLedger::Seen::kPending:
      ++counters_.gradients_duplicate;
      if (!options_.ack_after_hq) {
        completions->emplace_back(std::move(*done),
                                  PushResult{push.version, /*duplicate=*/true, known_version_});
        return true;
      }
      ledger_.Wait(ledger_.TicketOf(push.sender, push.sequence),
                   [done = std::move(*done)](absl::StatusOr<PushResult> a) {
                     if (a.ok()) a->duplicate = true;
                     done(std::move(a));
                   });
      return true;
    case PushLedger::Seen::kAnswered: {
      ++counters_.gradients_duplicate;
      absl::StatusOr<PushResult> first = ledger_.Answered(push.sender);
      if (first.ok()) first->duplicate = true;
      completions->emplace_back(std::move(*done), std::move(first));
      return true;
    }
    case PushLedger::Seen::kSuperseded:
      ++counters_.gradients_duplicate;
      completions->emplace_back(std::move(*done),
                                PushResult{push.version, /*duplicate=*/true, known_version_});
      return true;
  }
  return false;
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
  c.retry = push.retry;
  c.edge_round = push.edge_round;
  // Every gradient goes into an accumulator (round, batch or alone), whose
  // Add checks the values in the read it makes anyway.
  if (absl::Status s = ValidateContribution(c, num_floats_, /*check_values=*/false); !s.ok()) {
    return Drop(DropReason::kInvalid, s);
  }
  Admitted admitted;
  const absl::Time due = policy_->CloseAt();
  const Verdict verdict = policy_->Admit(c, now, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const ContributorRef ref = Open(push);
    admitted.ticket = ref.ticket;
    return ref;
  });
  if (policy_->CloseAt() < due) timer_->Poke();  // a round's deadline or a batch's window runs
  switch (verdict.kind) {
    case Verdict::Kind::kRefused:
      return Drop(verdict.refusal->reason, verdict.refusal->status);
    case Verdict::Kind::kDuplicate:
      ++counters_.gradients_duplicate;
      return Admitted{0, PushResult{push.version, /*duplicate=*/true, known_version_}};
    case Verdict::Kind::kTaken:
      break;
  }
  return admitted;
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
      if (policy_ != nullptr) policy_->MembersChanged();
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
  if (leaving) DeliverApplied();  // (its leaving may have completed a round)
  return answer;
}

void Aggregator::EndForming() {
  {
    absl::MutexLock lock(&mu_);
    if (!members_.forming()) return;
    LOG(INFO) << "joining a cluster that is already training: rounds need only live workers";
    members_.EndForming();
    if (policy_ != nullptr) policy_->MembersChanged();
  }
  DeliverApplied();
}

std::shared_ptr<const WeightsSnapshot> Aggregator::HqWeights() const {
  absl::MutexLock lock(&mu_);
  return hq_weights_;
}

void Aggregator::SetDataPositions(std::map<std::string, int64_t> positions) {
  absl::MutexLock lock(&mu_);
  data_positions_ = std::move(positions);
}

bool Aggregator::forming() const {
  mu_.AssertHeld();
  return members_.forming();
}

bool Aggregator::IsLive(const std::string& id) const {
  mu_.AssertHeld();
  return members_.IsLive(id);
}

std::vector<std::string> Aggregator::Live() const {
  mu_.AssertHeld();
  return members_.Live();
}

bool Aggregator::AllIn(const absl::flat_hash_set<std::string>& done) const {
  mu_.AssertHeld();
  return members_.AllLiveIn(done);
}

int64_t Aggregator::newest_version() const {
  mu_.AssertHeld();
  return known_version_;
}

void Aggregator::Emit(RoundOutput o) {
  mu_.AssertHeld();
  if (o.kind == RoundOutput::Kind::kEdgeRound) {
    // Applied here: its pushes are answered, its weights served.
    const int64_t k = static_cast<int64_t>(o.refs.size());
    for (const ContributorRef& ref : o.refs) {
      Settle(ref, PushResult{ref.version, /*duplicate=*/false, known_version_}, &applied_acks_);
    }
    counters_.gradients_pending -= k;
    counters_.gradients_edge_applied += k;
    ++counters_.edge_rounds_closed;
    applied_weights_ = std::move(o.weights);
    applied_pending_.store(true);
    return;
  }
  AggregatePush out;
  out.version = o.version;
  out.total_samples = o.total_samples;
  out.contributors = o.contributors;
  out.loss_sum = o.loss_sum;
  // One version: the plain form of an aggregate.
  if (o.versions.size() > 1) out.contributor_versions = std::move(o.versions);
  out.contributor_list = std::move(o.refs);
  out.single = o.kind == RoundOutput::Kind::kAlone;
  out.edge_pushes = o.edge_pushes;
  out.sum = std::move(o.sum);
  if (out.single) ++counters_.gradients_sent_alone;
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

void Aggregator::DeliverApplied() {
  if (!applied_pending_.load()) return;  // (every push outside edge rounds)
  Completions acks;
  {
    absl::MutexLock publish_lock(&publish_mu_);
    std::shared_ptr<const WeightsSnapshot> weights;
    {
      absl::MutexLock lock(&mu_);
      acks.swap(applied_acks_);
      weights = std::move(applied_weights_);
      applied_weights_ = nullptr;
      applied_pending_.store(false);
    }
    // (Under publish_mu_: HQ's next weights, or another incarnation's, are
    // published after these, never before.)
    if (weights != nullptr) board_.Publish(std::move(weights));
  }
  Run(std::move(acks));
}

void Aggregator::DiscardAll(DropReason reason, Completions* completions) {
  if (policy_ != nullptr) DropHeld(policy_->Release(), reason, completions);
}

void Aggregator::DropHeld(std::vector<ContributorRef> refs, DropReason reason,
                          Completions* completions) {
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
    snapshot = TakeWeights(std::move(snapshot), &completions);
  }
  if (snapshot == nullptr) return;  // not newer
  board_.Publish(std::move(snapshot));
  publish_lock.Release();
  Run(std::move(completions));
  DeliverApplied();
}

std::shared_ptr<const WeightsSnapshot> Aggregator::TakeWeights(
    std::shared_ptr<const WeightsSnapshot> snapshot, Completions* completions) {
  const bool hq_restarted = version_ >= 0 && snapshot->incarnation != incarnation_;
  if (version_ >= 0 && !hq_restarted &&
      (snapshot->version < version_ ||
       (snapshot->version == version_ && (training_done_ || !snapshot->training_done)))) {
    return nullptr;
  }
  if (hq_restarted) {
    // HQ restarted (from a checkpoint, possibly older than what is here):
    // its versions start a new line, and nothing summed for the old one
    // can be applied.
    LOG(WARNING) << "HQ restarted: incarnation " << snapshot->incarnation << " at version "
                 << snapshot->version << " (was at version " << version_ << ")";
    DiscardAll(DropReason::kHqRestarted, completions);
    known_version_ = -1;
  }
  incarnation_ = snapshot->incarnation;
  hq_weights_ = snapshot;
  const size_t num_floats = snapshot->weights.size();
  const bool resized = policy_ == nullptr || num_floats != num_floats_;
  if (resized) {
    // HQ trains another model now: what was summed for the old one is void.
    DiscardAll(DropReason::kInvalid, completions);
    num_floats_ = num_floats;
    absl::MutexLock encode_lock(&encode_mu_);
    compressor_ = options_.compression.encoding == Encoding::kFp32
                      ? nullptr
                      : std::make_unique<Compressor>(options_.compression, num_floats,
                                                     snapshot->layout.buffer_ranges());
  }
  const bool mode_changed = snapshot->mode != mode_ || snapshot->mode_since != mode_since_;
  if (snapshot->training_done) {
    DiscardAll(DropReason::kUnfinished, completions);
  } else if (mode_changed) {
    DiscardAll(DropReason::kModeChanged, completions);
    if (version_ >= 0) {
      LOG(INFO) << "mode " << DescribeMode(snapshot->mode) << " from version "
                << snapshot->mode_since;
    }
  }
  version_ = snapshot->version;
  mode_ = snapshot->mode;
  mode_since_ = snapshot->mode_since;
  training_done_ = snapshot->training_done;
  known_version_ = std::max(known_version_, version_);
  if (resized || mode_changed) policy_ = MakeRoundPolicy(PolicyOptions(), this);
  // The round opens before any worker can see its weights, so no gradient
  // of this version can arrive before its round exists. What the policy
  // still holds of an older version HQ moved on without (a round closed at
  // HQ's deadline) is dropped.
  std::vector<ContributorRef> superseded;
  snapshot = policy_->Begin(Versions(), std::move(snapshot), &superseded);
  DropHeld(std::move(superseded), DropReason::kSuperseded, completions);
  return snapshot;
}

RoundPolicyOptions Aggregator::PolicyOptions() const {
  RoundPolicyOptions o;
  o.tier = RoundPolicyOptions::Tier::kAggregator;
  o.mode = mode_;
  o.num_floats = num_floats_;
  o.quorum = options_.quorum_workers == 0 ? options_.expected_workers : options_.quorum_workers;
  o.round_deadline = options_.round_deadline;
  o.coalesce_capacity = options_.expected_workers;
  o.coalesce_window = options_.coalesce_window;
  o.id = options_.id;
  o.edge_epoch = edge_epoch_;
  o.spares = const_cast<BufferPool*>(&spares_);
  return o;
}

absl::Time Aggregator::NextDeadline() const {
  absl::MutexLock lock(&mu_);
  const absl::Time expiry = members_.NextExpiry();
  return policy_ == nullptr ? expiry : std::min(policy_->CloseAt(), expiry);
}

void Aggregator::CloseDue(absl::Time now) {
  {
    absl::MutexLock lock(&mu_);
    if (shutdown_) return;
    for (const std::string& id : members_.Expire(now)) worker_stats_.erase(id);
    if (policy_ != nullptr) policy_->Poll(now);
  }
  DeliverApplied();
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
  DeliverApplied();  // (a parked push may have closed a round applied here)
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
      // Applied here already: their answers stand.
      for (auto& ack : applied_acks_) completions.push_back(std::move(ack));
      applied_acks_.clear();
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
