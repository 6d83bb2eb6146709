#include "hq/parameter_server.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"

namespace hips {

absl::Status ValidateParameterServerOptions(const ParameterServerOptions& o) {
  if (o.expected_aggregators < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("HQ needs at least 1 aggregator, got ", o.expected_aggregators));
  }
  if (o.quorum_aggregators < 0 || o.quorum_aggregators > o.expected_aggregators) {
    return absl::InvalidArgumentError(absl::StrCat("aggregator quorum must be in [0, ",
                                                   o.expected_aggregators, "], got ",
                                                   o.quorum_aggregators));
  }
  if (o.round_deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the round deadline must be positive (or infinite)");
  }
  if (o.max_versions < 0) return absl::InvalidArgumentError("max versions must be >= 0");
  if (o.max_samples < 0) return absl::InvalidArgumentError("max samples must be >= 0");
  if (o.async_momentum >= 1) return absl::InvalidArgumentError("async momentum must be < 1");
  if (o.lr_reference_samples < 0) {
    return absl::InvalidArgumentError("the learning-rate reference batch must be >= 0");
  }
  return ValidateModeConfig(o.mode);
}

ParameterServer::ParameterServer(
    ParameterServerOptions options, ModelLayout layout, std::unique_ptr<Optimizer> optimizer,
    std::function<void(std::shared_ptr<const WeightsSnapshot>)> on_publish)
    : options_(std::move(options)),
      layout_(std::move(layout)),
      on_publish_(std::move(on_publish)),
      optimizer_(std::move(optimizer)),
      round_(layout_.num_floats(), options_.expected_aggregators,
             options_.quorum_aggregators == 0 ? options_.expected_aggregators
                                              : options_.quorum_aggregators,
             options_.round_deadline) {
  absl::MutexLock lock(&apply_mu_);
  mean_.resize(layout_.num_floats());
  momentum_ = options_.optimizer.momentum;
  mode_ = options_.mode;
  {
    absl::MutexLock status_lock(&mu_);
    status_.max_versions = options_.max_versions;
    status_.max_samples = options_.max_samples;
    status_.mode = mode_;
  }
  Publish(Snapshot());
  if (options_.round_deadline != absl::InfiniteDuration()) {
    timer_ = std::make_unique<DeadlineTimer>(
        [this] {
          absl::MutexLock lock(&apply_mu_);
          return mode_.mode == Mode::kSync ? round_.CloseAt() : absl::InfiniteFuture();
        },
        [this](absl::Time now) { CloseDueRound(now); });
  }
}

ParameterServer::~ParameterServer() { Shutdown(); }

void ParameterServer::Shutdown() {
  if (timer_ != nullptr) timer_->Stop();
  board_.Shutdown();
}

std::shared_ptr<const WeightsSnapshot> ParameterServer::Snapshot() {
  auto snapshot = std::make_shared<WeightsSnapshot>();
  snapshot->version = version_;
  snapshot->layout = layout_;
  snapshot->weights.resize(layout_.num_floats());
  optimizer_->GetWeights(absl::MakeSpan(snapshot->weights));
  snapshot->training_done = training_done_;
  snapshot->mode = mode_;
  snapshot->mode_since = mode_since_;
  return snapshot;
}

void ParameterServer::Publish(std::shared_ptr<const WeightsSnapshot> snapshot) {
  // The round of a sync version opens before anyone can see its weights, so
  // no gradient of that version arrives before its round exists.
  if (!snapshot->training_done && snapshot->mode.mode == Mode::kSync) round_.Open(version_);
  board_.Publish(snapshot);
  if (on_publish_) on_publish_(std::move(snapshot));
}

absl::Status ParameterServer::Drop(const AggregatePush& a, DropReason reason, absl::Status why) {
  absl::MutexLock lock(&mu_);
  const std::string name(DropReasonName(reason));
  ++status_.aggregates_dropped[name];
  status_.gradients_dropped[name] += a.contributors;
  return why;
}

double ParameterServer::UseMomentumOf(Mode mode) {
  const double base = options_.optimizer.momentum;
  double wanted = base;
  if (mode != Mode::kSync && options_.optimizer.name == "sgd" && options_.async_momentum >= 0) {
    wanted = std::min(base, options_.async_momentum);
  }
  if (wanted != momentum_) {
    if (absl::Status s = optimizer_->SetMomentum(wanted); !s.ok()) {
      LOG_FIRST_N(WARNING, 1) << "keeping momentum " << momentum_ << ": " << s;
      wanted = momentum_;
    } else {
      momentum_ = wanted;
    }
  }
  return base < 1 ? (1.0 - momentum_) / (1.0 - base) : 1.0;
}

double ParameterServer::ScheduledRate() const {
  if (options_.max_samples > 0) {
    return ScheduledLearningRate(options_.optimizer, samples_applied_, options_.max_samples);
  }
  return ScheduledLearningRate(options_.optimizer, version_, options_.max_versions);
}

absl::StatusOr<PushResult> ParameterServer::AcceptAggregate(const AggregatePush& a,
                                                            absl::Time now) {
  absl::MutexLock lock(&apply_mu_);
  {
    absl::MutexLock status_lock(&mu_);
    ++status_.aggregates_received;
    status_.gradients_received += a.contributors;
  }
  PushResult result{a.version, /*duplicate=*/false, version_};
  auto duplicate = [&]() {
    absl::MutexLock status_lock(&mu_);
    ++status_.aggregates_duplicate;
    status_.gradients_duplicate += a.contributors;
    result.duplicate = true;
    return result;
  };
  if (repeats_.IsRepeat(a.aggregator, a.sequence)) return duplicate();
  Contribution c;
  c.sender = a.aggregator;
  c.version = a.version;
  c.samples = a.total_samples;
  c.loss_sum = a.loss_sum;
  c.contributors = a.contributors;
  c.scale = 1.0f;  // already Σ n_i·g_i
  c.values = a.sum;
  if (absl::Status s = ValidateContribution(c, layout_.num_floats()); !s.ok()) {
    return Drop(a, DropReason::kInvalid, s);
  }
  if (training_done_) {
    return Drop(a, DropReason::kTrainingDone,
                absl::FailedPreconditionError(
                    absl::StrCat("training ended at version ", version_)));
  }
  if (a.version > version_) {
    return Drop(a, DropReason::kFutureVersion,
                absl::FailedPreconditionError(absl::StrCat(
                    "aggregate of version ", a.version, " but HQ is at version ", version_)));
  }
  if (a.version < mode_since_) {
    return Drop(a, DropReason::kModeChanged,
                absl::FailedPreconditionError(absl::StrCat(
                    "aggregate of version ", a.version, " predates the switch to ",
                    DescribeMode(mode_), " at version ", mode_since_)));
  }

  if (mode_.mode == Mode::kSync) {
    // A round past its deadline is applied before a late aggregate is looked
    // at (which then belongs to an older version).
    if (round_.CloseIfDue(now)) ApplyRound();
    const bool first = round_.received() == 0;
    DropReason reason;
    absl::StatusOr<SyncRound::AddOutcome> outcome = round_.Add(c, &reason, now);
    if (!outcome.ok()) return Drop(a, reason, outcome.status());
    if (*outcome == SyncRound::AddOutcome::kDuplicate) return duplicate();
    repeats_.Record(a.aggregator, a.sequence);
    {
      absl::MutexLock status_lock(&mu_);
      ++status_.aggregates_applied;
      status_.gradients_pending += a.contributors;
    }
    if (round_.state() == SyncRound::State::kClosed) {
      ApplyRound();
    } else if (first && timer_ != nullptr) {
      timer_->Poke();  // the round's deadline now runs
    }
    result.newest_version = version_;
    return result;
  }

  // a.version is the oldest version of the aggregate's gradients.
  const int64_t staleness = version_ - a.version;
  if (mode_.mode == Mode::kSsp && staleness > mode_.staleness) {
    return Drop(a, DropReason::kStalenessExceeded,
                absl::FailedPreconditionError(absl::StrCat(
                    "aggregate of version ", a.version, " is ", staleness,
                    " versions stale; the bound is ", mode_.staleness)));
  }
  std::map<int64_t, int64_t> staleness_counts;
  int64_t counted = 0;
  for (const auto& [version, count] : a.contributor_versions) {
    if (version < a.version || version > version_ || count <= 0) {
      return Drop(a, DropReason::kInvalid,
                  absl::InvalidArgumentError(absl::StrCat(
                      "contributor version ", version, " outside [", a.version, ", ", version_,
                      "] or count ", count, " not positive")));
    }
    staleness_counts[version_ - version] += count;
    counted += count;
  }
  if (a.contributor_versions.empty()) {
    staleness_counts[staleness] = a.contributors;
    counted = a.contributors;
  }
  if (counted != a.contributors) {
    return Drop(a, DropReason::kInvalid,
                absl::InvalidArgumentError(absl::StrCat("contributor versions count ", counted,
                                                        " gradients of ", a.contributors)));
  }
  repeats_.Record(a.aggregator, a.sequence);
  {
    absl::MutexLock status_lock(&mu_);
    ++status_.aggregates_applied;
  }
  for (size_t i = 0; i < mean_.size(); ++i) {
    mean_[i] = a.sum[i] / static_cast<float>(a.total_samples);
  }
  double lr = ScheduledRate() * UseMomentumOf(mode_.mode);
  if (options_.lr_reference_samples > 0) {
    lr *= static_cast<double>(a.total_samples) / options_.lr_reference_samples;
  }
  // With coalescing, the mean of the gradients' factors.
  double factor = 0;
  for (const auto& [tau, count] : staleness_counts) {
    factor += StalenessFactor(options_.staleness_lr, tau) * static_cast<double>(count);
  }
  lr *= factor / static_cast<double>(a.contributors);
  ApplyUpdate(mean_, lr, a.total_samples, a.loss_sum, staleness_counts);
  result.newest_version = version_;
  return result;
}

void ParameterServer::ApplyRound() {
  const GradientAccumulator& acc = round_.accumulator();
  acc.MeanInto(absl::MakeSpan(mean_));
  {
    absl::MutexLock status_lock(&mu_);
    status_.gradients_pending -= acc.contributors();
  }
  ApplyUpdate(mean_, ScheduledRate() * UseMomentumOf(Mode::kSync), acc.total_samples(),
              acc.loss_sum(), {{0, acc.contributors()}});
}

void ParameterServer::ApplyUpdate(absl::Span<const float> mean, double lr, int64_t samples,
                                  double loss_sum, const std::map<int64_t, int64_t>& staleness) {
  int64_t gradients = 0;
  for (const auto& [tau, count] : staleness) gradients += count;
  const absl::Status stepped = optimizer_->Step(mean, lr);
  if (!stepped.ok()) {
    // The version still advances (with the weights as they are) so that no
    // tier waits forever on a round that cannot be applied; the gradients
    // are counted as dropped.
    LOG(ERROR) << "optimizer step of version " << version_ << " failed: " << stepped;
    absl::MutexLock status_lock(&mu_);
    const std::string name(DropReasonName(DropReason::kOptimizerFailed));
    status_.gradients_dropped[name] += gradients;
  } else {
    samples_applied_ += samples;
  }
  ++version_;
  training_done_ = (options_.max_versions > 0 && version_ >= options_.max_versions) ||
                   (options_.max_samples > 0 && samples_applied_ >= options_.max_samples);
  if (pending_mode_.has_value() && !training_done_) {
    LOG(INFO) << "mode switched from " << DescribeMode(mode_) << " to "
              << DescribeMode(*pending_mode_) << " at version " << version_;
    mode_ = *pending_mode_;
    mode_since_ = version_;
    pending_mode_.reset();
  }
  {
    absl::MutexLock status_lock(&mu_);
    status_.version = version_;
    status_.training_done = training_done_;
    status_.samples_applied = samples_applied_;
    status_.mode = mode_;
    status_.mode_since = mode_since_;
    status_.pending_mode = pending_mode_;
    if (stepped.ok()) {
      status_.last_loss = loss_sum / static_cast<double>(samples);
      status_.gradients_applied += gradients;
      for (const auto& [tau, count] : staleness) status_.staleness.Record(tau, count);
    }
  }
  if (training_done_) {
    LOG(INFO) << "training done at version " << version_ << " after " << samples_applied_
              << " samples";
  }
  Publish(Snapshot());
}

void ParameterServer::CloseDueRound(absl::Time now) {
  absl::MutexLock lock(&apply_mu_);
  if (mode_.mode != Mode::kSync || training_done_) return;
  if (round_.CloseIfDue(now)) {
    VLOG(1) << "round " << round_.version() << " closed at its deadline with "
            << round_.received() << " of " << round_.expected() << " aggregates";
    ApplyRound();
  }
}

absl::StatusOr<ModeSwitch> ParameterServer::SetMode(const ModeConfig& mode) {
  if (absl::Status s = ValidateModeConfig(mode); !s.ok()) return s;
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

ParameterServerStatus ParameterServer::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

}  // namespace hips
