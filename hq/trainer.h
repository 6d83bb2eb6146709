#ifndef HIPS_HQ_TRAINER_H_
#define HIPS_HQ_TRAINER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "services/models/checkpoint.h"
#include "services/models/optimizer.h"
#include "services/rounds/admission.h"
#include "services/types/consistency.h"
#include "services/types/model_layout.h"
#include "services/types/payloads.h"

namespace hips {

struct TrainerOptions {
  OptimizerOptions optimizer;
  // The training budget: the weights are final after this many versions or
  // applied samples, whichever comes first (0: no such budget). The
  // learning-rate schedule runs over the sample budget when there is one,
  // else over the version budget.
  int64_t max_versions = 0;
  int64_t max_samples = 0;
  // The mode at version 0.
  ModeConfig mode;
};

struct ModeSwitch {
  ModeConfig previous;
  // The first version trained in the new mode.
  int64_t effective_version = 0;
};

// HQ's master weights, through an Optimizer, and the line of versions they
// make: the version, the samples applied, the budget and the learning-rate
// schedule, the mode and a switch requested for the next version. Each Step
// makes the next version. Not thread-safe: the owner serializes access.
class Trainer {
 public:
  Trainer(TrainerOptions options, ModelLayout layout, std::unique_ptr<Optimizer> optimizer);

  int64_t version() const { return version_; }
  int64_t samples_applied() const { return samples_applied_; }
  bool training_done() const { return training_done_; }
  const ModeConfig& mode() const { return mode_; }
  int64_t mode_since() const { return mode_since_; }
  const std::optional<ModeConfig>& pending_mode() const { return pending_mode_; }
  // What a contribution's version is judged by.
  VersionState state() const { return {version_, mode_, mode_since_, training_done_}; }
  const ModelLayout& layout() const { return layout_; }

  // Where an update's mean goes before Step: the optimizer's own gradient
  // buffer where it has one (no copy).
  absl::Span<float> mean() { return mean_; }
  // The learning rate of the step from this version (before a mode's
  // scaling).
  double ScheduledRate() const;
  // Sets the optimizer's SGD settings (SGD only; on failure the old ones
  // stay, logged once) and returns those in use.
  const SgdSettings& UseSgd(const SgdSettings& wanted);

  // The factor rollbacks left on the learning rate (1 before any; part of
  // ScheduledRate), and how many there were.
  double lr_scale() const { return lr_scale_; }
  int64_t rollbacks() const { return rollbacks_; }
  // Makes version `published` + 1 (`published`: the newest version anyone
  // saw; a step that made the weights non-finite is not one) with
  // `weights` (the best so far), the optimizer's state reset (its momentum
  // carried the divergence) and the learning rate times `lr_factor` from
  // now on. A new line of weights starts there (mode_since): contributions
  // computed before it are refused (mode_changed).
  absl::Status RollBack(absl::Span<const float> weights, double lr_factor, int64_t published);
  // Makes version `published` + 1, the last: `weights` (the last finite
  // ones), and training is done.
  absl::Status Stop(absl::Span<const float> weights, int64_t published);

  // Steps with mean() at `lr` (no step without samples: an empty round) and
  // makes the next version. The version advances even when the step fails
  // (returned), so that no tier waits forever on a round that cannot be
  // applied.
  absl::Status Step(double lr, int64_t samples);
  // The mode requested for the version Step just made, if any (not after
  // training). Take it with TakeSwitch; `reset_optimizer` drops the
  // optimizer's state (momentum buffers) when the kind of step changes.
  const std::optional<ModeConfig>& due_switch() const;
  void TakeSwitch(bool reset_optimizer);
  // A switch at the next version (the same mode cancels one pending).
  // FAILED_PRECONDITION once training is done.
  absl::StatusOr<ModeSwitch> RequestMode(const ModeConfig& mode);

  // The weights of this version (from a recycled buffer), with its mode,
  // budget state and `incarnation`.
  std::shared_ptr<WeightsSnapshot> Snapshot(int64_t incarnation) const;
  // The weights, optimizer state, version, samples and mode (the caller
  // adds what it keeps: data positions, sequences).
  absl::StatusOr<Checkpoint> Capture() const;
  // Continues from `checkpoint`. INVALID_ARGUMENT (nothing changed) when it
  // holds another model, inconsistent counters, a bad mode or an optimizer
  // state of another kind.
  absl::Status Restore(const Checkpoint& checkpoint);

 private:
  // Drops the optimizer's state (its momentum buffers); `across` says for
  // what, in the warning when the optimizer cannot.
  void ResetOptimizer(absl::string_view across);

  const TrainerOptions options_;
  const ModelLayout layout_;
  std::unique_ptr<Optimizer> optimizer_;
  int64_t version_ = 0;
  int64_t samples_applied_ = 0;
  bool training_done_ = false;
  ModeConfig mode_;
  int64_t mode_since_ = 0;
  std::optional<ModeConfig> pending_mode_;
  // The mean gradient of an update: the optimizer's GradientBuffer(), or
  // own_mean_ if it has none.
  absl::Span<float> mean_;
  std::vector<float> own_mean_;
  SgdSettings sgd_;  // what the optimizer uses now
  double lr_scale_ = 1.0;
  int64_t rollbacks_ = 0;
};

}  // namespace hips

#endif  // HIPS_HQ_TRAINER_H_
