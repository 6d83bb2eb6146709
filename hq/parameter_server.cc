#include "hq/parameter_server.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/core/buffer_pool.h"
#include "services/core/float_pieces.h"
#include "services/core/gradient_accumulator.h"

namespace hips {

absl::Status ValidateParameterServerOptions(const ParameterServerOptions& o) {
  if (o.expected_aggregators < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HQ needs at least 1 aggregator, got ", o.expected_aggregators));
  }
  if (o.max_aggregators != 0 && o.max_aggregators < o.expected_aggregators) {
    return absl::InvalidArgumentError(absl::StrCat("max aggregators must be at least the ",
                                                   o.expected_aggregators, " expected, got ",
                                                   o.max_aggregators));
  }
  if (o.max_workers < 0) return absl::InvalidArgumentError("max workers must be >= 0");
  if (o.max_batch_samples < 1 || o.max_batch_samples > GradientAccumulator::kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("max batch samples must be in [1, 2^31], got ", o.max_batch_samples));
  }
  if (o.quorum_aggregators < 0 || o.quorum_aggregators > o.expected_aggregators) {
    return absl::InvalidArgumentError(absl::StrCat("aggregator quorum must be in [0, ",
                                                   o.expected_aggregators, "], got ",
                                                   o.quorum_aggregators));
  }
  if (o.round_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the round deadline must be positive (or infinite)");
  }
  if (o.lease <= absl::ZeroDuration())
    return absl::InvalidArgumentError("the lease must be positive");
  if (o.max_versions < 0) return absl::InvalidArgumentError("max versions must be >= 0");
  if (o.max_samples < 0) return absl::InvalidArgumentError("max samples must be >= 0");
  if (o.async_momentum >= 1) return absl::InvalidArgumentError("async momentum must be < 1");
  if (o.lr_reference_samples < 0) {
    return absl::InvalidArgumentError("the learning-rate reference batch must be >= 0");
  }
  if (!(o.server_lr > 0 && o.server_lr <= 1000)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the server learning rate must be in (0, 1000], got ", o.server_lr));
  }
  if (!(o.server_momentum >= 0 && o.server_momentum < 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the server momentum must be in [0, 1), got ", o.server_momentum));
  }
  if (absl::Status s = ValidateModeConfig(o.mode); !s.ok()) return s;
  return CheckModeFitsOptimizer(o.mode, o.optimizer);
}

absl::Status CheckModeFitsOptimizer(const ModeConfig& mode, const OptimizerOptions& optimizer) {
  if (mode.mode == Mode::kFedAvg && optimizer.name != "sgd") {
    return absl::InvalidArgumentError(
        absl::StrCat("fedavg runs SGD on the workers; HQ's optimizer is ", optimizer.name,
                     " (use --optimizer=sgd)"));
  }
  return absl::OkStatus();
}

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
      optimizer_(std::move(optimizer)),
      // Complete when every live aggregator is in (MaybeApplyRound).
      round_(layout_.num_floats(), /*expected_contributions=*/0,
             options_.quorum_aggregators == 0 ? options_.expected_aggregators
                                              : options_.quorum_aggregators,
             options_.round_deadline),
      members_(
          options_.lease, options_.expected_aggregators,
          options_.max_aggregators > 0 ? options_.max_aggregators : options_.expected_aggregators),
      incarnation_(options_.incarnation != 0 ? options_.incarnation : FirstSequenceNumber()) {
  absl::MutexLock lock(&apply_mu_);
  last_checkpoint_time_ = clock_->Now();
  // The mean gradient is written straight into the optimizer's own gradient
  // buffer where it has one.
  mean_ = optimizer_->GradientBuffer();
  if (mean_.empty()) {
    own_mean_.resize(layout_.num_floats());
    mean_ = absl::MakeSpan(own_mean_);
  }
  sgd_ = {options_.optimizer.momentum, options_.optimizer.nesterov,
          options_.optimizer.weight_decay};
  mode_ = options_.mode;
  {
    absl::MutexLock status_lock(&mu_);
    status_.max_versions = options_.max_versions;
    status_.max_samples = options_.max_samples;
    status_.mode = mode_;
    status_.incarnation = incarnation_;
    status_.forming = members_.forming();
  }
  Publish(Snapshot());
  timer_ = clock_->NewTimer([this] { return NextDeadline(); },
                            [this](absl::Time now) { CloseDueRound(now); });
}

absl::Time ParameterServer::NextDeadline() {
  absl::MutexLock lock(&apply_mu_);
  const absl::Time expiry = members_.NextExpiry();
  return UsesRounds(mode_.mode) ? std::min(round_.CloseAt(), expiry) : expiry;
}

ParameterServer::~ParameterServer() { Shutdown(); }

void ParameterServer::Shutdown() {
  if (timer_ != nullptr) timer_->Stop();
  board_.Shutdown();
}

std::shared_ptr<const WeightsSnapshot> ParameterServer::Snapshot() {
  // A recycled buffer: GetWeights overwrites it whole.
  std::shared_ptr<WeightsSnapshot> snapshot = NewRecycledSnapshot();
  snapshot->version = version_;
  snapshot->layout = layout_;
  snapshot->weights = WeightsBuffers().Take(layout_.num_floats());
  optimizer_->GetWeights(absl::MakeSpan(snapshot->weights));
  snapshot->training_done = training_done_;
  snapshot->mode = mode_;
  snapshot->mode_since = mode_since_;
  snapshot->incarnation = incarnation_;
  snapshot->local_sgd = LocalSgd();
  if (mode_.mode == Mode::kFedAvg) {
    snapshot->local_sgd = {ScheduledRate(), options_.optimizer.momentum,
                           options_.optimizer.nesterov, options_.optimizer.weight_decay};
  }
  snapshot->participants.clear();
  return snapshot;
}

void ParameterServer::Publish(std::shared_ptr<const WeightsSnapshot> snapshot) {
  // The round of a sync version opens before anyone can see its weights, so
  // no gradient of that version arrives before its round exists.
  if (!snapshot->training_done && UsesRounds(snapshot->mode.mode)) round_.Open(version_);
  board_.Publish(snapshot);
  if (on_publish_) on_publish_(std::move(snapshot));
}

absl::Status ParameterServer::Drop(const AggregatePush& a, DropReason reason, absl::Status why) {
  absl::MutexLock lock(&mu_);
  CountArrival(a);
  const std::string name(DropReasonName(reason));
  ++status_.aggregates_dropped[name];
  status_.gradients_dropped[name] += a.contributors;
  return why;
}

double ParameterServer::UseSettingsOf(Mode mode) {
  const OptimizerOptions& base = options_.optimizer;
  SgdSettings wanted{base.momentum, base.nesterov, base.weight_decay};
  if (mode == Mode::kFedAvg) {
    // The workers' local steps had the weight decay and the momentum; HQ's
    // step is FedAvgM's.
    wanted = {options_.server_momentum, false, 0.0};
  } else if (mode != Mode::kSync && base.name == "sgd" && options_.async_momentum >= 0) {
    wanted.momentum = std::min(base.momentum, options_.async_momentum);
    wanted.nesterov = base.nesterov && wanted.momentum > 0;
  }
  if (base.name == "sgd" && !(wanted == sgd_)) {
    if (absl::Status s = optimizer_->SetSgd(wanted); !s.ok()) {
      LOG_FIRST_N(WARNING, 1) << "keeping momentum " << sgd_.momentum << ": " << s;
    } else {
      sgd_ = wanted;
    }
  }
  if (mode == Mode::kFedAvg) return 1.0;
  return base.momentum < 1 ? (1.0 - sgd_.momentum) / (1.0 - base.momentum) : 1.0;
}

double ParameterServer::RoundRate() {
  const double factor = UseSettingsOf(mode_.mode);
  return mode_.mode == Mode::kFedAvg ? options_.server_lr : ScheduledRate() * factor;
}

double ParameterServer::ScheduledRate() const {
  if (options_.max_samples > 0) {
    return ScheduledLearningRate(options_.optimizer, samples_applied_, options_.max_samples);
  }
  return ScheduledLearningRate(options_.optimizer, version_, options_.max_versions);
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
  const absl::Time now = clock_->Now();
  // Counted received together with its outcome (CountArrival), so that a
  // status read in between still adds up.
  arriving_bytes_ = wire_bytes;
  if (!members_.HasRoom(a.aggregator)) {
    return Drop(a, DropReason::kMembershipFull, Full(a.aggregator));
  }
  if (members_.Touch(a.aggregator, now)) {
    LOG(INFO) << a.aggregator << " joined (first heard of through an aggregate)";
    if (timer_ != nullptr) timer_->Poke();
    PublishMembership();
  }
  if (ledger_.Look(a.aggregator, a.sequence) != PushLedger::Seen::kNew) return Duplicate(a);
  if (a.contributors == 0) {
    // An aggregator's sync round whose gradients all came on alone.
    ledger_.Record(a.aggregator, a.sequence);
    {
      absl::MutexLock status_lock(&mu_);
      CountArrival(a);
      ++status_.aggregates_applied;
    }
    SenderDone(a);
    return PushResult{a.version, /*duplicate=*/false, version_};
  }
  // Each worker gradient is applied at most once, whichever aggregator it
  // came through (a retry after a failover may reach HQ twice).
  size_t repeated = 0;
  for (const ContributorRef& c : a.contributor_list) {
    repeated += worker_ledger_.Look(c.worker, c.sequence) != PushLedger::Seen::kNew;
  }
  if (repeated > 0) {
    ledger_.Record(a.aggregator, a.sequence);
    SenderDone(a);
    if (repeated == a.contributor_list.size()) return Duplicate(a);
    return Drop(a, DropReason::kRepeatedContributor,
                absl::FailedPreconditionError(absl::StrCat(
                    repeated, " of the ", a.contributor_list.size(), " gradients in aggregate ",
                    a.sequence, " from ", a.aggregator, " were already applied")));
  }
  Contribution c;
  c.sender = a.aggregator;
  c.version = a.version;
  c.samples = a.total_samples;
  c.loss_sum = a.loss_sum;
  c.contributors = a.contributors;
  c.scale = 1.0f;  // already Σ n_i·g_i
  c.values = a.values();
  c.completes_sender = !a.single;
  for (const ContributorRef& ref : a.contributor_list) c.members.push_back(ref.worker);
  if (absl::Status s = ValidateContribution(c, layout_.num_floats()); !s.ok()) {
    return Drop(a, DropReason::kInvalid, s);
  }
  if (std::optional<Refusal> r = CheckVersion(
          VersionState{version_, mode_, mode_since_, training_done_}, a.version, "aggregate")) {
    return Drop(a, r->reason, r->status);
  }
  return UsesRounds(mode_.mode) ? AcceptSync(a, c, now) : AcceptAsync(a, c);
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
  return PushResult{a.version, /*duplicate=*/true, version_};
}

void ParameterServer::Taken(const AggregatePush& a) {
  ledger_.Record(a.aggregator, a.sequence);
  RecordContributors(a);
  absl::MutexLock status_lock(&mu_);
  CountArrival(a);
  ++status_.aggregates_applied;
  // Pending until ApplyUpdate counts them applied.
  status_.gradients_pending += a.contributors;
}

absl::StatusOr<PushResult> ParameterServer::AcceptSync(const AggregatePush& a,
                                                       const Contribution& c, absl::Time now) {
  // A round past its deadline is applied before a late aggregate is looked
  // at (which then belongs to an older version).
  if (round_.CloseIfDue(now)) ApplyRound();
  const bool first = round_.received() == 0;
  DropReason reason;
  absl::StatusOr<SyncRound::AddOutcome> outcome = round_.Add(c, &reason, now);
  if (!outcome.ok()) {
    MaybeApplyRound();  // a refused aggregate may still end its sender's part
    return Drop(a, reason, outcome.status());
  }
  if (*outcome == SyncRound::AddOutcome::kDuplicate) {
    MaybeApplyRound();
    return Duplicate(a);
  }
  Taken(a);
  if (round_.state() == SyncRound::State::kClosed) {
    ApplyRound();
  } else {
    MaybeApplyRound();
    if (first && round_.state() == SyncRound::State::kOpen && timer_ != nullptr) {
      timer_->Poke();  // the round's deadline now runs
    }
  }
  return PushResult{a.version, /*duplicate=*/false, version_};
}

absl::StatusOr<PushResult> ParameterServer::AcceptAsync(const AggregatePush& a,
                                                        const Contribution& c) {
  // a.version is the oldest version of the aggregate's gradients.
  if (std::optional<Refusal> r =
          CheckStaleness(mode_, a.version, version_ - a.version, "aggregate")) {
    return Drop(a, r->reason, r->status);
  }
  std::map<int64_t, int64_t> staleness_counts;
  int64_t counted = 0;
  for (const auto& [version, count] : a.contributor_versions) {
    if (version < a.version || version > version_ || count <= 0) {
      return Drop(a, DropReason::kInvalid,
                  absl::InvalidArgumentError(absl::StrCat("contributor version ", version,
                                                          " outside [", a.version, ", ", version_,
                                                          "] or count ", count, " not positive")));
    }
    staleness_counts[version_ - version] += count;
    counted += count;
  }
  if (a.contributor_versions.empty()) {
    staleness_counts[version_ - a.version] = a.contributors;
    counted = a.contributors;
  }
  if (counted != a.contributors) {
    return Drop(a, DropReason::kInvalid,
                absl::InvalidArgumentError(absl::StrCat("contributor versions count ", counted,
                                                        " gradients of ", a.contributors)));
  }
  Taken(a);
  const absl::Time started = clock_->Now();
  // Validated above: mean_.size() floats, finite.
  const float samples = static_cast<float>(a.total_samples);
  float* mean = mean_.data();
  const EncodedValues values = c.values;
  if (values.encoding == Encoding::kFp32) {
    values.bytes.ForEachRun([mean, samples](size_t first, const char* bytes, size_t n) {
      for (size_t i = 0; i < n; ++i) mean[first + i] = LoadFloat(bytes + 4 * i) / samples;
    });
  } else {
    DecodeInto(values, mean);
    for (float& m : mean_) m /= samples;
  }
  double lr = ScheduledRate() * UseSettingsOf(mode_.mode);
  if (options_.lr_reference_samples > 0) {
    lr *= static_cast<double>(a.total_samples) / options_.lr_reference_samples;
  }
  // With coalescing, the mean of the gradients' factors.
  double factor = 0;
  for (const auto& [tau, count] : staleness_counts) {
    factor += StalenessFactor(options_.staleness_lr, tau) * static_cast<double>(count);
  }
  lr *= factor / static_cast<double>(a.contributors);
  ApplyUpdate(mean_, lr, a.total_samples, a.loss_sum, staleness_counts, started);
  return PushResult{a.version, /*duplicate=*/false, version_};
}

void ParameterServer::RecordContributors(const AggregatePush& a) {
  for (const ContributorRef& c : a.contributor_list) {
    worker_ledger_.Record(c.worker, c.sequence);
    int64_t& position = data_positions_[c.worker];
    position = std::max(position, c.step + 1);
  }
}

void ParameterServer::SenderDone(const AggregatePush& a) {
  if (!UsesRounds(mode_.mode) || a.single || training_done_) return;
  round_.MarkSenderDone(a.aggregator, a.version);
  MaybeApplyRound();
}

bool ParameterServer::RoundComplete() const {
  if (round_.state() != SyncRound::State::kOpen || members_.forming()) return false;
  for (const std::string& aggregator : members_.Live()) {
    auto it = reports_.find(aggregator);
    const bool has_workers =
        it == reports_.end() || it->second.forming || !it->second.live_workers.empty();
    if (has_workers && !round_.HasSender(aggregator)) return false;
  }
  return true;
}

void ParameterServer::MaybeApplyRound() {
  if (!UsesRounds(mode_.mode) || training_done_ || !RoundComplete()) return;
  if (round_.accumulator().contributors() == 0) {
    if (mode_.mode == Mode::kFedAvg && !round_.senders().empty()) {
      // Every aggregator is done with the round and none had a drawn worker
      // left to take part: the version moves on, the weights as they are,
      // and the next round draws again.
      LOG(WARNING) << "fedavg round of version " << version_ << " had no participant left";
      round_.Close();
      ApplyUpdate(mean_, 0, 0, 0, {}, clock_->Now());
      return;
    }
    // Everyone it waits for is done, but nothing arrived to apply (every
    // aggregate was refused): the same version is trained again.
    if (!round_.senders().empty()) round_.Open(version_);
    return;
  }
  round_.Close();
  ApplyRound();
}

absl::Status ParameterServer::Full(const std::string& aggregator) const {
  return absl::ResourceExhaustedError(absl::StrCat(
      "HQ is full: ", members_.live_count(), " live aggregators of at most ",
      members_.max_members(), " (--max_aggregators); ", aggregator, " was not let in"));
}

absl::StatusOr<HeartbeatAnswer> ParameterServer::Heartbeat(const HeartbeatRequestData& hb) {
  absl::MutexLock lock(&apply_mu_);
  const absl::Time now = clock_->Now();
  if (!hb.leaving && !members_.HasRoom(hb.member)) {
    LOG_EVERY_N(WARNING, 100) << Full(hb.member) << " (every 100th is logged)";
    return Full(hb.member);
  }
  if (hb.leaving) {
    if (members_.IsLive(hb.member)) LOG(INFO) << hb.member << " left";
    members_.Leave(hb.member);
    reports_.erase(hb.member);
  } else {
    if (members_.Touch(hb.member, now, hb.incarnation)) {
      LOG(INFO) << hb.member << " joined (incarnation " << hb.incarnation << ") with "
                << hb.live_workers.size() << " live workers";
      if (timer_ != nullptr) timer_->Poke();
    }
    reports_[hb.member] = Report{hb.live_workers, hb.forming, hb.address};
  }
  PublishMembership();
  MaybeApplyRound();
  HeartbeatAnswer answer;
  answer.lease = options_.lease;
  answer.version = version_;
  for (const std::string& w : hb.live_workers) {
    if (auto it = data_positions_.find(w); it != data_positions_.end()) {
      answer.data_positions[w] = it->second;
    }
  }
  return answer;
}

void ParameterServer::ResetOptimizerState() {
  absl::StatusOr<OptimizerState> state = optimizer_->ExportState();
  if (!state.ok()) return;
  OptimizerState fresh;
  fresh.name = state->name;
  if (absl::Status s = optimizer_->ImportState(fresh); !s.ok()) {
    LOG(WARNING) << "keeping the optimizer state across the mode switch: " << s;
  }
}

void ParameterServer::ApplyRound() {
  const absl::Time started = clock_->Now();
  const GradientAccumulator& acc = round_.accumulator();
  acc.MeanInto(mean_);
  {
    absl::MutexLock status_lock(&mu_);
    status_.max_round_contributors =
        std::max<int64_t>(status_.max_round_contributors, acc.contributors());
  }
  ApplyUpdate(mean_, RoundRate(), acc.total_samples(), acc.loss_sum(), {{0, acc.contributors()}},
              started);
}

void ParameterServer::ApplyUpdate(absl::Span<const float> mean, double lr, int64_t samples,
                                  double loss_sum, const std::map<int64_t, int64_t>& staleness,
                                  absl::Time started) {
  int64_t gradients = 0;
  for (const auto& [tau, count] : staleness) gradients += count;
  // (An empty fedavg round takes no step.)
  const absl::Status stepped = samples == 0 ? absl::OkStatus() : optimizer_->Step(mean, lr);
  if (!stepped.ok()) {
    // The version still advances (with the weights as they are) so that no
    // tier waits forever on a round that cannot be applied; the gradients
    // are counted as dropped.
    LOG(ERROR) << "optimizer step of version " << version_ << " failed: " << stepped;
    absl::MutexLock status_lock(&mu_);
    const std::string name(DropReasonName(DropReason::kOptimizerFailed));
    status_.gradients_dropped[name] += gradients;
    status_.gradients_pending -= gradients;
  } else {
    samples_applied_ += samples;
  }
  ++version_;
  training_done_ = (options_.max_versions > 0 && version_ >= options_.max_versions) ||
                   (options_.max_samples > 0 && samples_applied_ >= options_.max_samples);
  if (pending_mode_.has_value() && !training_done_) {
    LOG(INFO) << "mode switched from " << DescribeMode(mode_) << " to "
              << DescribeMode(*pending_mode_) << " at version " << version_;
    if ((mode_.mode == Mode::kFedAvg) != (pending_mode_->mode == Mode::kFedAvg)) {
      // The momentum of gradients and the server momentum of deltas are
      // different quantities: neither carries over into the other.
      ResetOptimizerState();
    }
    mode_ = *pending_mode_;
    mode_since_ = version_;
    pending_mode_.reset();
  }
  // Weights first, then the status: whoever sees the status of a version
  // finds weights at least that new.
  Publish(Snapshot());
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
  if (training_done_) {
    LOG(INFO) << "training done at version " << version_ << " after " << samples_applied_
              << " samples";
  }
  MaybeCheckpoint();
}

namespace {
constexpr char kWorkerKey[] = "worker:";
constexpr char kAggregatorKey[] = "aggregator:";
}  // namespace

absl::StatusOr<Checkpoint> ParameterServer::Capture() {
  absl::MutexLock lock(&apply_mu_);
  return CaptureLocked();
}

absl::StatusOr<Checkpoint> ParameterServer::CaptureLocked() {
  Checkpoint c;
  c.version = version_;
  c.samples_applied = samples_applied_;
  c.training_done = training_done_;
  c.mode = mode_;
  c.mode_since = mode_since_;
  c.layout = layout_;
  c.weights.resize(layout_.num_floats());
  optimizer_->GetWeights(absl::MakeSpan(c.weights));
  absl::StatusOr<OptimizerState> state = optimizer_->ExportState();
  if (!state.ok()) return state.status();
  c.optimizer = *std::move(state);
  c.data_positions = data_positions_;
  for (const auto& [worker, sequence] : worker_ledger_.newest()) {
    c.sequences[absl::StrCat(kWorkerKey, worker)] = sequence;
  }
  for (const auto& [aggregator, sequence] : ledger_.newest()) {
    c.sequences[absl::StrCat(kAggregatorKey, aggregator)] = sequence;
  }
  c.created_unix_micros = absl::ToUnixMicros(absl::Now());
  return c;
}

void ParameterServer::MaybeCheckpoint() {
  if (!on_checkpoint_ || version_ == last_checkpoint_version_) return;
  const absl::Time now = clock_->Now();
  const bool due = training_done_ ||
                   (options_.checkpoint_every_versions > 0 &&
                    version_ - std::max<int64_t>(0, last_checkpoint_version_) >=
                        options_.checkpoint_every_versions) ||
                   (options_.checkpoint_every > absl::ZeroDuration() &&
                    now - last_checkpoint_time_ >= options_.checkpoint_every);
  if (!due) return;
  absl::StatusOr<Checkpoint> c = CaptureLocked();
  if (!c.ok()) {
    LOG_FIRST_N(ERROR, 1) << "cannot checkpoint: " << c.status();
    return;
  }
  last_checkpoint_version_ = version_;
  last_checkpoint_time_ = now;
  on_checkpoint_(*std::move(c));
  absl::MutexLock status_lock(&mu_);
  ++status_.checkpoints_taken;
  status_.last_checkpoint_version = version_;
}

absl::Status ParameterServer::Restore(const Checkpoint& c) {
  absl::MutexLock lock(&apply_mu_);
  if (c.layout != layout_ || static_cast<int64_t>(c.weights.size()) != layout_.num_floats()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the checkpoint holds another model: ", c.layout.DebugString()));
  }
  if (c.version < 0 || c.samples_applied < 0 || c.mode_since < 0 || c.mode_since > c.version) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint of version ", c.version, " with inconsistent counters"));
  }
  if (absl::Status s = ValidateModeConfig(c.mode); !s.ok()) return s;
  if (absl::Status s = optimizer_->ImportState(c.optimizer); !s.ok()) return s;
  if (absl::Status s = optimizer_->SetWeights(c.weights); !s.ok()) return s;
  version_ = c.version;
  samples_applied_ = c.samples_applied;
  training_done_ = c.training_done;
  mode_ = c.mode;
  mode_since_ = c.mode_since;
  data_positions_ = c.data_positions;
  for (const auto& [key, sequence] : c.sequences) {
    if (absl::StartsWith(key, kWorkerKey)) {
      worker_ledger_.Record(key.substr(strlen(kWorkerKey)), sequence);
    } else if (absl::StartsWith(key, kAggregatorKey)) {
      ledger_.Record(key.substr(strlen(kAggregatorKey)), sequence);
    }
  }
  // The aggregators that trained before are not waited for at start: any
  // of them may be gone.
  members_.EndForming();
  last_checkpoint_version_ = version_;
  {
    absl::MutexLock status_lock(&mu_);
    CopyTrainingState();
    status_.resumed_from = version_;
    status_.forming = false;
  }
  LOG(INFO) << "resumed from the checkpoint of version " << version_ << " (" << samples_applied_
            << " samples applied, mode " << DescribeMode(mode_) << ")";
  Publish(Snapshot());
  return absl::OkStatus();
}

void ParameterServer::CloseDueRound(absl::Time now) {
  absl::MutexLock lock(&apply_mu_);
  const std::vector<std::string> expired = members_.Expire(now);
  for (const std::string& aggregator : expired) reports_.erase(aggregator);
  if (!expired.empty()) PublishMembership();
  if (!UsesRounds(mode_.mode) || training_done_) return;
  // (The lambdas run here, with apply_mu_ held.)
  CloseRoundIfDue(
      &round_, now, "aggregates",
      [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_) { MaybeApplyRound(); },
      [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(apply_mu_) { ApplyRound(); });
}

absl::StatusOr<ModeSwitch> ParameterServer::SetMode(const ModeConfig& mode) {
  if (absl::Status s = ValidateModeConfig(mode); !s.ok()) return s;
  if (absl::Status s = CheckModeFitsOptimizer(mode, options_.optimizer); !s.ok()) {
    return absl::FailedPreconditionError(s.message());
  }
  absl::MutexLock lock(&apply_mu_);
  if (training_done_) {
    return absl::FailedPreconditionError(
        absl::StrCat("training ended at version ", version_, "; no mode to switch"));
  }
  ModeSwitch result{mode_, version_ + 1};
  if (mode == mode_) {
    pending_mode_.reset();  // cancels a pending switch, if any
    result.effective_version = mode_since_;
    LOG(INFO) << "mode " << DescribeMode(mode) << " requested; already in it since version "
              << mode_since_;
  } else {
    pending_mode_ = mode;
    LOG(INFO) << "mode switch from " << DescribeMode(mode_) << " to " << DescribeMode(mode)
              << " requested at version " << version_ << "; takes effect at version "
              << version_ + 1;
  }
  absl::MutexLock status_lock(&mu_);
  status_.pending_mode = pending_mode_;
  return result;
}

void ParameterServer::RecordRefusal(DropReason reason) {
  absl::MutexLock lock(&mu_);
  ++status_.aggregates_received;
  ++status_.aggregates_dropped[std::string(DropReasonName(reason))];
}

void ParameterServer::CopyTrainingState() {
  status_.version = version_;
  status_.training_done = training_done_;
  status_.samples_applied = samples_applied_;
  status_.mode = mode_;
  status_.mode_since = mode_since_;
  status_.pending_mode = pending_mode_;
}

void ParameterServer::PublishMembership() {
  std::vector<std::string> aggregators = members_.Live();
  std::set<std::string> workers;
  std::vector<MemberInfo> infos;
  for (const std::string& aggregator : aggregators) {
    MemberInfo& info = infos.emplace_back();
    info.id = aggregator;
    info.last_seen = members_.LastSeen(aggregator);
    if (auto it = reports_.find(aggregator); it != reports_.end()) {
      workers.insert(it->second.live_workers.begin(), it->second.live_workers.end());
      info.address = it->second.address;
      info.live_workers = it->second.live_workers;
      info.forming = it->second.forming;
    }
  }
  absl::MutexLock lock(&mu_);
  status_.aggregators = std::move(infos);
  status_.live_aggregators = std::move(aggregators);
  status_.live_workers.assign(workers.begin(), workers.end());
  status_.forming = members_.forming();
}

ParameterServerStatus ParameterServer::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace hips
