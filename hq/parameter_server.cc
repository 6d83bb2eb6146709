#include "hq/parameter_server.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/numeric/buffer_pool.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/rounds/round_policies.h"
#include "services/types/float_pieces.h"

namespace hips {

ParameterServer::ParameterServer(
    ParameterServerOptions options, ModelLayout layout, std::unique_ptr<Optimizer> optimizer,
    std::function<void(std::shared_ptr<const WeightsSnapshot>)> on_publish,
    std::function<void(Checkpoint)> on_checkpoint)
    : options_(std::move(options)),
      layout_(std::move(layout)),
      on_publish_(std::move(on_publish)),
      on_checkpoint_(std::move(on_checkpoint)),
      clock_(options_.clock),
      board_(clock_),
      trainer_(TrainerOptionsOf(options_), layout_, std::move(optimizer)),
      roster_(options_.lease, options_.expected_aggregators, options_.max_aggregators),
      aggregator_retention_(kRetentionLeases * options_.lease),
      worker_retention_(kRetentionLeases * options_.lease),
      incarnation_(options_.incarnation != 0 ? options_.incarnation : NewIncarnation()) {
  absl::MutexLock lock(&apply_mu_);
  last_checkpoint_time_ = clock_->Now();
  policy_ = MakeRoundPolicy(PolicyOptions(trainer_.mode()), this);
  {
    absl::MutexLock status_lock(&mu_);
    status_.max_versions = options_.max_versions;
    status_.max_samples = options_.max_samples;
    status_.mode = trainer_.mode();
    status_.incarnation = incarnation_;
    status_.forming = roster_.members().forming();
  }
  Publish(Snapshot());
  timer_ = clock_->NewTimer([this] { return NextDeadline(); },
                            [this](absl::Time now) { CloseDueRound(now); });
}

absl::Time ParameterServer::NextDeadline() {
  absl::MutexLock lock(&apply_mu_);
  const absl::Time expiry = roster_.members().NextExpiry();
  return std::min(policy_->CloseAt(), expiry);
}

ParameterServer::~ParameterServer() { Shutdown(); }

void ParameterServer::StopIntake() {
  absl::MutexLock lock(&apply_mu_);
  intake_stopped_ = true;
}

void ParameterServer::Shutdown() {
  if (timer_ != nullptr) timer_->Stop();
  board_.Shutdown();
}

std::shared_ptr<const WeightsSnapshot> ParameterServer::Snapshot() {
  std::shared_ptr<WeightsSnapshot> snapshot = trainer_.Snapshot(incarnation_);
  snapshot->local_sgd = policy_->WorkersSgd(trainer_.ScheduledRate());
  return snapshot;
}

void ParameterServer::Publish(std::shared_ptr<const WeightsSnapshot> snapshot) {
  // The version's round opens before anyone can see its weights, so no
  // aggregate of that version arrives before its round exists.
  std::vector<ContributorRef> superseded;  // (none: HQ's rounds close before it publishes)
  policy_->Begin(trainer_.state(), nullptr, &superseded);
  {
    absl::MutexLock status_lock(&mu_);
    round_opened_at_ = clock_->Now();
  }
  NoteRound();
  board_.Publish(snapshot);
  if (on_publish_) on_publish_(std::move(snapshot));
}

absl::Status ParameterServer::Drop(const AggregatePush& a, DropReason reason, absl::Status why) {
  {
    absl::MutexLock lock(&mu_);
    CountArrival(a);
    const std::string name(DropReasonName(reason));
    ++status_.aggregates_dropped[name];
    status_.gradients_dropped[name] += a.contributors;
  }
  Refused(a.aggregator, a.version, reason);
  if (reason == DropReason::kNonFinite && roster_.members().IsLive(a.aggregator)) {
    std::vector<std::string> workers;
    for (const ContributorRef& c : a.contributor_list) workers.push_back(c.worker);
    NonFinite(a.aggregator, workers);
  }
  return why;
}

void ParameterServer::Refused(const std::string& aggregator, int64_t version, DropReason reason) {
  // (A refused newcomer is no member: it ends nobody's part of a round.)
  if (roster_.members().IsLive(aggregator)) {
    policy_->Refused(aggregator, version, reason, clock_->Now());
  }
}

RoundPolicyOptions ParameterServer::PolicyOptions(const ModeConfig& mode) {
  return PolicyOptionsOf(options_, mode, static_cast<size_t>(layout_.num_floats()), &round_spares_);
}

absl::StatusOr<PushResult> ParameterServer::AcceptAggregate(const AggregatePush& a) {
  const int64_t wire_bytes = static_cast<int64_t>(a.values().bytes.bytes());
  // A dense compressed sum (fp16, bf16) is decoded before the lock that
  // serializes updates, into a buffer of its own: the update then reads
  // float32, and the first of a sync round becomes the round's sum without
  // a copy (docs/performance.md).
  std::vector<float> decoded;
  AggregatePush as_floats;
  const AggregatePush* in = &a;
  const EncodedValues values = a.values();
  if ((values.encoding == Encoding::kFp16 || values.encoding == Encoding::kBf16) &&
      a.contributors > 0 && values.num_floats == layout_.num_floats() &&
      CheckEncodedValues(values).ok()) {
    decoded = decode_spares_.Take(static_cast<size_t>(values.num_floats));
    DecodeInto(values, decoded.data());
    as_floats = a;
    as_floats.received.values = EncodedValues(absl::MakeConstSpan(decoded));
    as_floats.received.values.adoptable = &decoded;
    in = &as_floats;
  }
  absl::StatusOr<PushResult> result = Accept(*in, wire_bytes);
  // Whatever buffer is left (its own, or the one a round's sum gave up).
  if (decoded.size() == static_cast<size_t>(layout_.num_floats())) {
    decode_spares_.Give(std::move(decoded));
  }
  return result;
}

absl::StatusOr<PushResult> ParameterServer::Accept(const AggregatePush& a, int64_t wire_bytes) {
  absl::MutexLock lock(&apply_mu_);
  // Whatever became of it, the status then says whom the round waits for.
  absl::Cleanup note = [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { NoteRound(); };
  if (intake_stopped_) {
    return absl::UnavailableError("HQ is shutting down; send the aggregate again once it is back");
  }
  const absl::Time now = clock_->Now();
  // Counted received together with its outcome (CountArrival), so that a
  // status read in between still adds up.
  arriving_bytes_ = wire_bytes;
  if (!roster_.members().HasRoom(a.aggregator)) {
    return Drop(a, DropReason::kMembershipFull, roster_.members().Full(a.aggregator));
  }
  aggregator_retention_.Touch(a.aggregator, now);
  if (roster_.members().Touch(a.aggregator, now)) {
    LOG(INFO) << a.aggregator << " joined (first heard of through an aggregate)";
    if (timer_ != nullptr) timer_->Poke();
    PublishMembership();
  }
  if (ledger_.Look(a.aggregator, a.incarnation, a.sequence) != PushLedger::Seen::kNew) {
    return Duplicate(a);
  }
  if (a.hq_incarnation != 0 && a.hq_incarnation != incarnation_) {
    return Drop(a, DropReason::kHqRestarted,
                absl::FailedPreconditionError(absl::StrCat(
                    "aggregate of weights of HQ incarnation ", a.hq_incarnation,
                    "; this HQ is incarnation ", incarnation_, " (it restarted since)")));
  }
  if (std::optional<std::string> why = MayRepeatForgotten(a)) {
    return Drop(a, DropReason::kStaleVersion, absl::FailedPreconditionError(*why));
  }
  NonFinite(a.aggregator, a.non_finite_workers);
  if (a.contributors == 0) {
    // An aggregator's sync round whose gradients all came on alone.
    ledger_.Record(a.aggregator, a.incarnation, a.sequence);
    {
      absl::MutexLock status_lock(&mu_);
      CountArrival(a);
      ++status_.aggregates_applied;
    }
    SenderDone(a);
    return PushResult{a.version, /*duplicate=*/false, trainer_.version()};
  }
  // Each worker gradient is applied at most once, whichever aggregator it
  // came through (a retry after a failover may reach HQ twice).
  size_t repeated = 0;
  for (const ContributorRef& c : a.contributor_list) {
    repeated += worker_ledger_.Look(c.worker, c.incarnation, c.sequence) != PushLedger::Seen::kNew;
  }
  if (repeated > 0) {
    ledger_.Record(a.aggregator, a.incarnation, a.sequence);
    SenderDone(a);
    if (repeated == a.contributor_list.size()) return Duplicate(a);
    return Drop(a, DropReason::kRepeatedContributor,
                absl::FailedPreconditionError(absl::StrCat(
                    repeated, " of the ", a.contributor_list.size(), " gradients in aggregate ",
                    a.sequence, " from ", a.aggregator, " were already applied")));
  }
  Contribution c = ContributionOf(a);
  if (absl::Status s = ValidateContribution(c, layout_.num_floats()); !s.ok()) {
    return Drop(a, RefusalReason(s), s);
  }
  if (const std::optional<double> norm = ClipContribution(&clipper_, &c); norm.has_value()) {
    {
      absl::MutexLock status_lock(&mu_);
      ++status_.aggregates_clipped;
    }
    LOG_EVERY_N(WARNING, 100) << a.aggregator << "'s aggregate of norm " << *norm
                              << " per sample was scaled down to the bound " << clipper_.bound()
                              << " (--clip_norm=" << ClipNormName(clipper_.clip())
                              << "; every 100th is logged)";
  }
  const absl::Time due = policy_->CloseAt();
  const Verdict verdict = policy_->Admit(c, now, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_) {
    Taken(a);
    return ContributorRef{};
  });
  if (policy_->CloseAt() < due && timer_ != nullptr) timer_->Poke();  // a deadline now runs
  switch (verdict.kind) {
    case Verdict::Kind::kRefused:
      return Drop(a, verdict.refusal->reason, verdict.refusal->status);
    case Verdict::Kind::kDuplicate:
      return Duplicate(a);
    case Verdict::Kind::kTaken:
      break;
  }
  return PushResult{a.version, /*duplicate=*/false, trainer_.version()};
}

void ParameterServer::CountArrival(const AggregatePush& a) {
  ++status_.aggregates_received;
  status_.aggregate_bytes_received += arriving_bytes_;
  status_.gradients_received += a.contributors;
}

PushResult ParameterServer::Duplicate(const AggregatePush& a) {
  absl::MutexLock status_lock(&mu_);
  CountArrival(a);
  ++status_.aggregates_duplicate;
  status_.gradients_duplicate += a.contributors;
  return PushResult{a.version, /*duplicate=*/true, trainer_.version()};
}

void ParameterServer::Taken(const AggregatePush& a) {
  ledger_.Record(a.aggregator, a.incarnation, a.sequence);
  RecordContributors(a);
  absl::MutexLock status_lock(&mu_);
  CountArrival(a);
  ++status_.aggregates_applied;
  // Pending until ApplyUpdate counts them applied.
  status_.gradients_pending += a.contributors;
}

void ParameterServer::RecordContributors(const AggregatePush& a) {
  const absl::Time now = clock_->Now();
  for (const ContributorRef& c : a.contributor_list) {
    worker_retention_.Touch(c.worker, now);
    worker_ledger_.Record(c.worker, c.incarnation, c.sequence);
    int64_t& position = data_positions_[c.worker];
    position = std::max(position, c.step + 1);
  }
}

void ParameterServer::SenderDone(const AggregatePush& a) {
  // (A retried gradient sent alone does not end its aggregator's part.)
  if (!a.single) policy_->MarkDone(a.aggregator, a.version, clock_->Now());
}

const Membership& ParameterServer::members() const {
  apply_mu_.AssertHeld();
  return roster_.members();
}

bool ParameterServer::WaitsFor(const std::string& aggregator) const {
  apply_mu_.AssertHeld();
  return roster_.HasWorkers(aggregator);
}

int64_t ParameterServer::newest_version() const {
  apply_mu_.AssertHeld();
  return trainer_.version();
}

void ParameterServer::Emit(RoundOutput o) {
  apply_mu_.AssertHeld();
  const absl::Time started = clock_->Now();
  if (o.kind == RoundOutput::Kind::kRound) {
    absl::MutexLock status_lock(&mu_);
    status_.max_round_contributors = std::max(status_.max_round_contributors, o.contributors);
  }
  double lr = 0;  // (a round with no samples takes no step)
  if (o.total_samples > 0) {
    RoundMeanInto(o, trainer_.mean());
    const SgdSettings& in_use = trainer_.UseSgd(policy_->StepSettings(policy_->options().hq.base));
    lr = policy_->StepRate(o, trainer_.ScheduledRate(), in_use);
  }
  ApplyUpdate(lr, o.total_samples, o.loss_sum, o.staleness, started);
  if (!o.sum.empty()) round_spares_.Give(std::move(o.sum));
}

absl::StatusOr<HeartbeatAnswer> ParameterServer::Heartbeat(const HeartbeatRequestData& hb) {
  absl::MutexLock lock(&apply_mu_);
  const absl::Time now = clock_->Now();
  absl::StatusOr<Membership::Change> change = roster_.Heartbeat(hb, now);
  if (!change.ok()) return change.status();
  aggregator_retention_.Touch(hb.member, now);
  for (const std::string& w : hb.live_workers) worker_retention_.Touch(w, now);
  ForgetLeftMembers(now);
  if (*change == Membership::Change::kJoined && timer_ != nullptr) timer_->Poke();
  PublishMembership();
  policy_->MembersChanged();
  NoteRound();
  HeartbeatAnswer answer;
  answer.lease = options_.lease;
  answer.version = trainer_.version();
  for (const std::string& w : hb.live_workers) {
    if (auto it = data_positions_.find(w); it != data_positions_.end()) {
      answer.data_positions[w] = it->second;
    }
  }
  return answer;
}

void ParameterServer::ApplyUpdate(double lr, int64_t samples, double loss_sum,
                                  const std::map<int64_t, int64_t>& staleness, absl::Time started) {
  int64_t gradients = 0;
  for (const auto& [tau, count] : staleness) gradients += count;
  std::shared_ptr<const WeightsSnapshot> applied_to = board_.Latest();
  const absl::Status stepped = trainer_.Step(lr, samples);
  if (!stepped.ok()) {
    // The version still advanced (with the weights as they are) so that no
    // tier waits forever on a round that cannot be applied; the gradients
    // are counted as dropped.
    LOG(ERROR) << "optimizer step of version " << trainer_.version() - 1 << " failed: " << stepped;
    absl::MutexLock status_lock(&mu_);
    const std::string name(DropReasonName(DropReason::kOptimizerFailed));
    status_.gradients_dropped[name] += gradients;
    status_.gradients_pending -= gradients;
  }
  SwitchIfDue();
  std::shared_ptr<const WeightsSnapshot> next = Snapshot();
  if (samples > 0 && stepped.ok()) {
    // Never published: weights a step made non-finite (docs/faults.md).
    if (std::optional<std::string> bad = FirstNonFinite(next->weights, "a weight after the step")) {
      {
        absl::MutexLock status_lock(&mu_);
        const std::string name(DropReasonName(DropReason::kNonFinite));
        status_.gradients_dropped[name] += gradients;
        status_.gradients_pending -= gradients;
      }
      Diverge(trainer_.version() - 1, *bad);
      return;
    }
    guard_.Finite(std::move(applied_to), loss_sum / static_cast<double>(samples));
  }
  // Weights first, then the status: whoever sees the status of a version
  // finds weights at least that new.
  Publish(std::move(next));
  {
    absl::MutexLock status_lock(&mu_);
    status_.update_seconds += absl::ToDoubleSeconds(clock_->Now() - started);
    CopyTrainingState();
    if (stepped.ok()) {
      if (samples > 0) status_.last_loss = loss_sum / static_cast<double>(samples);
      // Pending until now, so that a status read mid-update still adds up.
      status_.gradients_pending -= gradients;
      status_.gradients_applied += gradients;
      for (const auto& [tau, count] : staleness) status_.staleness.Record(tau, count);
    }
  }
  if (trainer_.training_done()) {
    LOG(INFO) << "training done at version " << trainer_.version() << " after "
              << trainer_.samples_applied() << " samples";
  }
  MaybeCheckpoint();
}

void ParameterServer::SwitchIfDue() {
  const std::optional<ModeConfig>& next = trainer_.due_switch();
  if (!next.has_value()) return;
  std::unique_ptr<RoundPolicy> policy = MakeRoundPolicy(PolicyOptions(*next), this);
  // The momentum of gradients and the server momentum of deltas are
  // different quantities: neither carries over into the other.
  trainer_.TakeSwitch(/*reset_optimizer=*/policy->StepsOnDeltas() != policy_->StepsOnDeltas());
  // The old policy may be the caller (it emitted the round applied here):
  // it lives until the next switch.
  retired_policy_ = std::move(policy_);
  policy_ = std::move(policy);
}

void ParameterServer::CloseDueRound(absl::Time now) {
  absl::MutexLock lock(&apply_mu_);
  if (!roster_.Expire(now).empty()) PublishMembership();
  ForgetLeftMembers(now);
  policy_->Poll(now);
  NoteRound();
}

absl::StatusOr<ModeSwitch> ParameterServer::SetMode(const ModeConfig& mode) {
  if (absl::Status s = ValidateModeConfig(mode); !s.ok()) return s;
  if (absl::Status s = CheckModeFitsOptimizer(mode, options_.optimizer.name); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  if (absl::Status s = CheckModeFitsControlVariates(mode, options_.control_variates); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  absl::MutexLock lock(&apply_mu_);
  absl::StatusOr<ModeSwitch> result = trainer_.RequestMode(mode);
  if (!result.ok()) return result;
  absl::MutexLock status_lock(&mu_);
  status_.pending_mode = trainer_.pending_mode();
  return result;
}

void ParameterServer::RecordRefusal(DropReason reason, const std::string& aggregator,
                                    int64_t version) {
  absl::MutexLock lock(&apply_mu_);
  {
    absl::MutexLock status_lock(&mu_);
    ++status_.aggregates_received;
    ++status_.aggregates_dropped[std::string(DropReasonName(reason))];
  }
  if (!aggregator.empty()) Refused(aggregator, version, reason);
  NoteRound();
}

void ParameterServer::CopyTrainingState() {
  status_.version = trainer_.version();
  status_.training_done = trainer_.training_done();
  status_.samples_applied = trainer_.samples_applied();
  status_.mode = trainer_.mode();
  status_.mode_since = trainer_.mode_since();
  status_.pending_mode = trainer_.pending_mode();
  status_.rollbacks = trainer_.rollbacks();
  status_.diverged_version = divergence_.version;
  status_.diverged_reason = divergence_.reason;
}

void ParameterServer::PublishMembership() {
  absl::MutexLock lock(&mu_);
  roster_.Describe(&status_);
}

void ParameterServer::ForgetLeftMembers(absl::Time now) {
  const int64_t version = trainer_.version();
  // (Live workers are touched by every heartbeat of their aggregator.)
  for (const std::string& w :
       worker_retention_.Sweep(now, version, [](const std::string&) { return false; })) {
    if (!worker_ledger_.Forget(w)) {
      worker_retention_.Touch(w, now);
      continue;
    }
    data_positions_.erase(w);
  }
  for (const std::string& a : aggregator_retention_.Sweep(
           now, version, [this](const std::string& id) ABSL_NO_THREAD_SAFETY_ANALYSIS {
             return roster_.members().IsLive(id);
           })) {
    if (!ledger_.Forget(a)) aggregator_retention_.Touch(a, now);
  }
}

std::optional<std::string> ParameterServer::MayRepeatForgotten(const AggregatePush& a) const {
  if (!ledger_.Knows(a.aggregator) && aggregator_retention_.MayRepeatForgotten(a.version)) {
    return absl::StrCat("aggregate of version ", a.version, " from ", a.aggregator,
                        ", which HQ no longer remembers: it may repeat one HQ forgot (members "
                        "gone longer than ",
                        kRetentionLeases,
                        " leases are forgotten; HQ "
                        "forgot some at version ",
                        aggregator_retention_.horizon(), ")");
  }
  for (const ContributorRef& c : a.contributor_list) {
    if (!worker_ledger_.Knows(c.worker) && worker_retention_.MayRepeatForgotten(c.version)) {
      return absl::StrCat("the gradient of ", c.worker, " computed on version ", c.version,
                          ", a worker HQ no longer remembers: it may repeat one HQ forgot "
                          "(workers gone longer than ",
                          kRetentionLeases, " leases are forgotten; HQ forgot some at version ",
                          worker_retention_.horizon(), ")");
    }
  }
  return std::nullopt;
}

ParameterServer::Tables ParameterServer::tables() {
  absl::MutexLock lock(&apply_mu_);
  Tables t;
  t.aggregator_ledger = ledger_.senders();
  t.worker_ledger = worker_ledger_.senders();
  t.data_positions = data_positions_.size();
  t.remembered = aggregator_retention_.size() + worker_retention_.size();
  return t;
}

void ParameterServer::NoteRound() {
  std::vector<std::string> waiting = policy_->WaitingFor();
  absl::MutexLock status_lock(&mu_);
  status_.round.version = trainer_.version();
  status_.round.members = std::move(waiting);
}

ParameterServerStatus ParameterServer::status() const {
  absl::MutexLock lock(&mu_);
  ParameterServerStatus s = status_;
  s.round.waited_s = absl::ToDoubleSeconds(clock_->Now() - round_opened_at_);
  return s;
}

}  // namespace hips
