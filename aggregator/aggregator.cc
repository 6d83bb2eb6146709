#include "aggregator/aggregator.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/notification.h"
#include "glog/logging.h"
#include "services/numeric/compression.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/numeric/robust_mean.h"
#include "services/types/ids.h"

// The aggregator's workers' side: their pushes (taken in, answered once
// through the ledger), their heartbeats, and the rounds the policy closes.
// HQ's side (weights in, aggregates out) is in aggregator_upstream.cc.

namespace hips {

Aggregator::Aggregator(AggregatorOptions options)
    : options_(std::move(options)),
      clock_(options_.clock),
      edge_epoch_(NewIncarnation()),
      board_(clock_),
      queue_(options_.id, options_.max_queued_aggregates, options_.compression),
      members_(
          options_.lease, options_.expected_workers,
          options_.max_workers > 0 ? options_.max_workers : 2 * options_.expected_workers,
          MembershipNames{absl::StrCat("aggregator ", options_.id), "workers", "--max_workers"}),
      retention_(kRetentionLeases * options_.lease) {
  timer_ = clock_->NewTimer([this] { return NextDeadline(); },
                            [this](absl::Time now) { CloseDue(now); });
}

Aggregator::~Aggregator() { Shutdown(); }

void Aggregator::Run(Completions completions) {
  for (auto& [done, answer] : completions) done(std::move(answer));
}

absl::Status Aggregator::Drop(DropReason reason, absl::Status why, const std::string& sender,
                              int64_t version) {
  ++counters_.gradients_dropped[std::string(DropReasonName(reason))];
  if (!sender.empty() && members_.IsLive(sender)) {
    if (reason == DropReason::kNonFinite) non_finite_unreported_.insert(sender);
    if (policy_ != nullptr) policy_->Refused(sender, version, reason, clock_->Now());
  }
  // A malformed push (or one claiming more than --max_batch_samples) is a
  // strike; its sender is the caller's own id (the security layer checked).
  if (reason == DropReason::kInvalid && !sender.empty()) Strike(sender, /*now_out=*/true);
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
    if (!shutdown_ && queue_.full() && members_.HasRoom(push.sender)) {
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
  while (!parked_.empty() && (shutdown_ || !queue_.full())) {
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
  const absl::Time now = clock_->Now();
  if (absl::Status out = CheckQuarantine(push.sender, now); !out.ok()) {
    return answer(Drop(DropReason::kQuarantined, std::move(out)));
  }
  if (!members_.HasRoom(push.sender)) {
    return answer(Drop(DropReason::kMembershipFull, members_.Full(push.sender)));
  }
  const bool joined = members_.Touch(push.sender, now);
  if (joined) ServeIfFormed();
  MemberInfo* stats = members_.Info(push.sender);
  stats->last_version = push.version;
  ++stats->gradients;
  stats->samples += push.samples;
  retention_.Touch(push.sender, now);
  if (ledger_.Look(push.sender, push.incarnation, push.sequence) != PushLedger::Seen::kNew) {
    // A repeat of a push taken in before gets the first attempt's answer.
    ++counters_.gradients_duplicate;
    std::optional<absl::StatusOr<PushResult>> first =
        ledger_.AnswerRepeat(push.sender, push.incarnation, push.sequence, options_.ack_after_hq,
                             done, PushResult{push.version, /*duplicate=*/true, known_version_});
    if (first.has_value()) answer(*std::move(first));
    return;
  }
  if (push.sequence > 0 && !ledger_.Knows(push.sender) &&
      retention_.MayRepeatForgotten(push.version)) {
    // (Its sender computes again on newer weights.)
    return answer(Drop(DropReason::kStaleVersion,
                       absl::FailedPreconditionError(absl::StrCat(
                           "a gradient of version ", push.version, " from ", push.sender,
                           ", a worker this aggregator no longer remembers: it may repeat one "
                           "it forgot (workers gone longer than ",
                           kRetentionLeases, " leases are forgotten; some were at version ",
                           retention_.horizon(), ")")),
                       push.sender, push.version));
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
    // Settled during its own admission: it closed a round applied here.
    if (push.sequence > 0) return answer(ledger_.Answered(push.sender));
    return answer(PushResult{push.version, /*duplicate=*/false, known_version_});
  }
  ledger_.Wait(admitted->ticket, std::move(done));
}

absl::StatusOr<Aggregator::Admitted> Aggregator::Admit(const GradientPush& push, absl::Time now) {
  if (push.hq_incarnation != 0 && incarnation_ != 0 && push.hq_incarnation != incarnation_) {
    // HQ restarted since: its versions after the checkpoint it resumed from
    // are another line of weights than those the gradient was computed on.
    return Drop(DropReason::kHqRestarted,
                absl::FailedPreconditionError(
                    absl::StrCat("computed on weights of HQ incarnation ", push.hq_incarnation,
                                 "; HQ restarted since (incarnation ", incarnation_,
                                 "): compute it again on the new weights")),
                push.sender, push.version);
  }
  Contribution c = ContributionOf(push);
  // Every gradient goes into an accumulator (round, batch or alone), whose
  // Add checks the values in the read it makes anyway.
  if (absl::Status s = ValidateContribution(c, num_floats_, /*check_values=*/false); !s.ok()) {
    return Drop(RefusalReason(s), s, push.sender, push.version);
  }
  CapSamples(&c);
  Clip(&c);
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
      return Drop(verdict.refusal->reason, verdict.refusal->status, push.sender, push.version);
    case Verdict::Kind::kDuplicate:
      ++counters_.gradients_duplicate;
      return Admitted{0, PushResult{push.version, /*duplicate=*/true, known_version_}};
    case Verdict::Kind::kTaken:
      break;
  }
  return admitted;
}

void Aggregator::Clip(Contribution* c) {
  const std::optional<double> norm = ClipContribution(&clipper_, c);
  if (!norm.has_value()) return;
  ++counters_.gradients_clipped;
  LOG_EVERY_N(WARNING, 100) << c->sender << "'s gradient of norm " << *norm
                            << " was scaled down to the bound " << clipper_.bound()
                            << " (--clip_norm=" << ClipNormName(clipper_.clip())
                            << "; every 100th is logged)";
}

void Aggregator::CapSamples(Contribution* c) {
  if (sample_cap_.clip().kind == ClipNorm::Kind::kOff) return;
  const double factor = sample_cap_.Factor(static_cast<double>(c->samples));
  if (factor >= 1.0) return;
  // What is summed is scale x values = samples x the mean gradient: the
  // same mean, over fewer samples.
  const int64_t capped =
      std::max<int64_t>(1, static_cast<int64_t>(static_cast<double>(c->samples) * factor));
  LOG_EVERY_N(WARNING, 100) << c->sender << "'s gradient claiming " << c->samples
                            << " samples counts as " << capped << " (--max_samples_per_push="
                            << ClipNormName(sample_cap_.clip(), kSampleCapMultiple)
                            << "; every 100th is logged)";
  c->scale = static_cast<float>(static_cast<double>(c->scale) * static_cast<double>(capped) /
                                static_cast<double>(c->samples));
  c->samples = capped;
  ++counters_.gradients_capped;
}

void Aggregator::Strike(const std::string& worker, bool now_out) {
  if (!quarantine_.Strike(worker, clock_->Now())) return;
  ++counters_.members_quarantined;
  if (!now_out || !members_.IsLive(worker)) return;
  members_.Leave(worker);
  if (policy_ != nullptr) policy_->MembersChanged();
}

absl::Status Aggregator::CheckQuarantine(const std::string& worker, absl::Time now) {
  absl::Status out = quarantine_.Check(worker, now);
  if (!out.ok() && members_.IsLive(worker)) {
    members_.Leave(worker);
    if (policy_ != nullptr) policy_->MembersChanged();
  }
  return out;
}

ContributorRef Aggregator::Open(const GradientPush& push) {
  ++counters_.gradients_accepted;
  ++counters_.gradients_pending;
  ContributorRef ref{push.sender, push.sequence, push.version, push.step, push.incarnation};
  ref.ticket = ledger_.Open(push.sender, push.incarnation, push.sequence);
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

absl::StatusOr<HeartbeatAnswer> Aggregator::Heartbeat(const std::string& worker,
                                                      int64_t incarnation, bool leaving) {
  return Heartbeat(absl::MakeConstSpan(&worker, 1), incarnation, leaving);
}

absl::StatusOr<HeartbeatAnswer> Aggregator::Heartbeat(absl::Span<const std::string> homes,
                                                      int64_t incarnation, bool leaving) {
  HeartbeatAnswer answer;
  {
    absl::MutexLock lock(&mu_);
    const absl::Time now = clock_->Now();
    absl::Status first_refusal;
    bool joined = false;
    bool taken = false;
    for (const std::string& worker : homes) {
      absl::Status out = CheckQuarantine(worker, now);
      absl::StatusOr<Membership::Change> change =
          out.ok() ? members_.Heartbeat(worker, now, incarnation, leaving)
                   : absl::StatusOr<Membership::Change>(out);
      if (!change.ok()) {
        if (first_refusal.ok()) first_refusal = change.status();
        continue;
      }
      taken = true;
      joined = joined || *change == Membership::Change::kJoined;
      retention_.Touch(worker, now);
      if (auto it = data_positions_.find(worker); it != data_positions_.end()) {
        answer.data_positions[worker] = it->second;
      }
    }
    if (!taken) return first_refusal;
    ForgetLeftWorkers(now);
    ServeIfFormed();
    if (leaving) {
      if (policy_ != nullptr) policy_->MembersChanged();
    } else if (joined) {
      timer_->Poke();  // its lease may be the next to run out
    }
    answer.lease = options_.lease;
    answer.version = known_version_;
  }
  // (Its leaving may have completed a round; its joining formed the tier.)
  DeliverApplied();
  return answer;
}

const Membership& Aggregator::members() const {
  mu_.AssertHeld();
  return members_;
}

int64_t Aggregator::newest_version() const {
  mu_.AssertHeld();
  return known_version_;
}

void Aggregator::Emit(RoundOutput o) {
  mu_.AssertHeld();
  // Members left out as outliers get a strike (they leave the membership
  // at their next push or heartbeat: this is the policy's call); the
  // others' strikes start again.
  for (const ContributorRef& ref : o.refs) {
    if (std::find(o.trimmed.begin(), o.trimmed.end(), ref.worker) == o.trimmed.end()) {
      quarantine_.Clear(ref.worker);
    }
  }
  for (const std::string& worker : o.trimmed) Strike(worker, /*now_out=*/false);
  if (!o.trimmed.empty()) {
    counters_.gradients_trimmed += static_cast<int64_t>(o.trimmed.size());
    LOG_EVERY_N(WARNING, 20) << "--robust=" << RobustName(options_.robust.kind)
                             << " left out the outliers " << absl::StrJoin(o.trimmed, ", ")
                             << " in the round of version " << o.version
                             << " (every 20th such round is logged)";
  }
  if (!o.held_down.empty()) {
    // Not a strike: in a round of 2 either may be the liar (one sending
    // zeros holds the honest one down).
    counters_.gradients_clipped += static_cast<int64_t>(o.held_down.size());
    LOG_EVERY_N(WARNING, 20) << "the round of version " << o.version << " held only 2 gradients and "
                             << o.held_down[0] << "'s was more than " << kOutlierFactor
                             << " times the other's norm: held down to it (every 20th is logged)";
  }
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
  if (o.kind == RoundOutput::Kind::kAlone) ++counters_.gradients_sent_alone;
  Queue(AggregateOf(std::move(o)));
}

void Aggregator::Queue(AggregatePush out) {
  out.hq_incarnation = incarnation_;
  out.non_finite_workers.assign(non_finite_unreported_.begin(), non_finite_unreported_.end());
  non_finite_unreported_.clear();
  queue_.Push(std::move(out));
  ++counters_.rounds_closed;
}

void Aggregator::DeliverApplied() {
  if (!applied_pending_.load()) return;  // (every push outside edge rounds)
  Completions acks;
  {
    absl::MutexLock publish_lock(&publish_mu_);
    std::shared_ptr<const WeightsSnapshot> weights;
    std::shared_ptr<const WeightsSnapshot> next;
    {
      absl::MutexLock lock(&mu_);
      acks.swap(applied_acks_);
      weights = std::move(applied_weights_);
      applied_weights_ = nullptr;
      applied_pending_.store(false);
      // HQ's newer weights, held while the round was open (--hq_buffer).
      next = TakeHeldForRound(&acks);
      if (applied_weights_ != nullptr) next = std::move(applied_weights_);  // (formed since)
      applied_weights_ = nullptr;
    }
    // (Under publish_mu_: HQ's next weights, or another incarnation's, are
    // published after these, never before.)
    if (weights != nullptr) board_.Publish(std::move(weights));
    if (next != nullptr) board_.Publish(std::move(next));
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

void Aggregator::RecordRefusal(DropReason reason, const std::string& worker, int64_t version) {
  {
    absl::MutexLock lock(&mu_);
    ++counters_.gradients_received;
    (void)Drop(reason, absl::OkStatus(), worker, version);
  }
  DeliverApplied();  // an edge round the refusal completed
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
    members_.Expire(now);
    ForgetLeftWorkers(now);
    if (policy_ != nullptr) policy_->Poll(now);
  }
  DeliverApplied();
}

void Aggregator::ForgetLeftWorkers(absl::Time now) {
  const std::vector<std::string> gone = retention_.Sweep(
      now, version_,
      [this](const std::string& id) ABSL_NO_THREAD_SAFETY_ANALYSIS { return members_.IsLive(id); });
  for (const std::string& w : gone) {
    // (One with a push still open is forgotten once it settled.)
    if (!ledger_.Forget(w)) retention_.Touch(w, now);
  }
}

Aggregator::Tables Aggregator::tables() const {
  absl::MutexLock lock(&mu_);
  return Tables{ledger_.senders(), retention_.size(), members_.Live().size()};
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
      for (const AggregatePush& a : queue_.TakeAll()) Undelivered(a, down, &completions);
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
  c.workers = members_.Describe();
  c.forming = members_.forming();
  if (policy_ != nullptr) {
    c.round.version = version_;
    c.round.members = policy_->WaitingFor();
    c.round.waited_s = absl::ToDoubleSeconds(clock_->Now() - round_opened_at_);
  }
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
