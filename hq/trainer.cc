#include "hq/trainer.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/numeric/buffer_pool.h"

namespace hips {

Trainer::Trainer(TrainerOptions options, ModelLayout layout, std::unique_ptr<Optimizer> optimizer)
    : options_(std::move(options)),
      layout_(std::move(layout)),
      optimizer_(std::move(optimizer)),
      mode_(options_.mode),
      sgd_{options_.optimizer.momentum, options_.optimizer.nesterov,
           options_.optimizer.weight_decay} {
  mean_ = optimizer_->GradientBuffer();
  if (mean_.empty()) {
    own_mean_.resize(layout_.num_floats());
    mean_ = absl::MakeSpan(own_mean_);
  }
}

double Trainer::ScheduledRate() const {
  if (options_.max_samples > 0) {
    return lr_scale_ *
           ScheduledLearningRate(options_.optimizer, samples_applied_, options_.max_samples);
  }
  return lr_scale_ * ScheduledLearningRate(options_.optimizer, version_, options_.max_versions);
}

void Trainer::ResetOptimizer(absl::string_view across) {
  absl::StatusOr<OptimizerState> state = optimizer_->ExportState();
  if (!state.ok()) return;
  OptimizerState fresh;
  fresh.name = state->name;
  if (absl::Status s = optimizer_->ImportState(fresh); !s.ok()) {
    LOG(WARNING) << "keeping the optimizer state across " << across << ": " << s;
  }
}

absl::Status Trainer::RollBack(absl::Span<const float> weights, double lr_factor,
                               int64_t published) {
  if (absl::Status s = optimizer_->SetWeights(weights); !s.ok()) return s;
  ResetOptimizer("the rollback");
  lr_scale_ *= lr_factor;
  ++rollbacks_;
  version_ = published + 1;
  // A new line of weights: what was computed on the old one (a paused
  // member's gradient of the diverging weights) is refused, as after a
  // mode switch (mode_changed).
  mode_since_ = version_;
  return absl::OkStatus();
}

absl::Status Trainer::Stop(absl::Span<const float> weights, int64_t published) {
  const absl::Status set = optimizer_->SetWeights(weights);
  version_ = published + 1;
  training_done_ = true;
  return set;
}

const SgdSettings& Trainer::UseSgd(const SgdSettings& wanted) {
  if (options_.optimizer.name == "sgd" && !(wanted == sgd_)) {
    if (absl::Status s = optimizer_->SetSgd(wanted); !s.ok()) {
      LOG_FIRST_N(WARNING, 1) << "keeping momentum " << sgd_.momentum << ": " << s;
    } else {
      sgd_ = wanted;
    }
  }
  return sgd_;
}

absl::Status Trainer::Step(double lr, int64_t samples) {
  const absl::Status stepped = samples == 0 ? absl::OkStatus() : optimizer_->Step(mean_, lr);
  if (stepped.ok()) samples_applied_ += samples;
  ++version_;
  training_done_ = (options_.max_versions > 0 && version_ >= options_.max_versions) ||
                   (options_.max_samples > 0 && samples_applied_ >= options_.max_samples);
  return stepped;
}

const std::optional<ModeConfig>& Trainer::due_switch() const {
  static const std::optional<ModeConfig>* const kNone = new std::optional<ModeConfig>();
  return training_done_ ? *kNone : pending_mode_;
}

void Trainer::TakeSwitch(bool reset_optimizer) {
  if (!due_switch().has_value()) return;
  LOG(INFO) << "mode switched from " << DescribeMode(mode_) << " to "
            << DescribeMode(*pending_mode_) << " at version " << version_;
  if (reset_optimizer) ResetOptimizer("the mode switch");
  mode_ = *pending_mode_;
  mode_since_ = version_;
  pending_mode_.reset();
}

absl::StatusOr<ModeSwitch> Trainer::RequestMode(const ModeConfig& mode) {
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
  return result;
}

std::shared_ptr<WeightsSnapshot> Trainer::Snapshot(int64_t incarnation) const {
  // A recycled buffer: GetWeights overwrites it whole.
  std::shared_ptr<WeightsSnapshot> snapshot = NewRecycledSnapshot();
  snapshot->version = version_;
  snapshot->layout = layout_;
  snapshot->weights = WeightsBuffers().Take(layout_.num_floats());
  optimizer_->GetWeights(absl::MakeSpan(snapshot->weights));
  snapshot->training_done = training_done_;
  snapshot->mode = mode_;
  snapshot->mode_since = mode_since_;
  snapshot->incarnation = incarnation;
  return snapshot;
}

absl::StatusOr<Checkpoint> Trainer::Capture() const {
  Checkpoint c;
  c.version = version_;
  c.samples_applied = samples_applied_;
  c.training_done = training_done_;
  c.mode = mode_;
  c.mode_since = mode_since_;
  c.lr_scale = lr_scale_;
  c.rollbacks = rollbacks_;
  c.layout = layout_;
  c.weights.resize(layout_.num_floats());
  optimizer_->GetWeights(absl::MakeSpan(c.weights));
  absl::StatusOr<OptimizerState> state = optimizer_->ExportState();
  if (!state.ok()) return state.status();
  c.optimizer = *std::move(state);
  return c;
}

absl::Status Trainer::Restore(const Checkpoint& c) {
  if (c.layout != layout_ || static_cast<int64_t>(c.weights.size()) != layout_.num_floats()) {
    // (A run of --fedavg_algorithm=scaffold checkpoints its control
    // variates as tensors "scaffold.c/<name>" after the model's.)
    auto variates = [](const ModelLayout& l) {
      for (const TensorSpec& t : l.tensors()) {
        if (absl::StartsWith(t.name, "scaffold.c/")) return true;
      }
      return false;
    };
    return absl::InvalidArgumentError(absl::StrCat(
        "the checkpoint holds another model: ",
        ModelLayout::FirstDifference(c.layout, layout_, "in the checkpoint", "here"),
        variates(c.layout) != variates(layout_)
            ? " (a run of --fedavg_algorithm=scaffold checkpoints its control variates as "
              "tensors 'scaffold.c/...': resume with the --fedavg_algorithm it ran with)"
            : ""));
  }
  if (c.version < 0 || c.samples_applied < 0 || c.mode_since < 0 || c.mode_since > c.version) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint of version ", c.version, " with inconsistent counters"));
  }
  if (absl::Status s = ValidateModeConfig(c.mode); !s.ok()) return s;
  if (!(c.lr_scale > 0 && c.lr_scale <= 1) || c.rollbacks < 0) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint of version ", c.version,
                                                   " with learning-rate scale ", c.lr_scale,
                                                   " after ", c.rollbacks, " rollbacks"));
  }
  if (absl::Status s = optimizer_->ImportState(c.optimizer); !s.ok()) return s;
  if (absl::Status s = optimizer_->SetWeights(c.weights); !s.ok()) return s;
  version_ = c.version;
  samples_applied_ = c.samples_applied;
  training_done_ = c.training_done;
  mode_ = c.mode;
  mode_since_ = c.mode_since;
  lr_scale_ = c.lr_scale;
  rollbacks_ = c.rollbacks;
  return absl::OkStatus();
}

}  // namespace hips
