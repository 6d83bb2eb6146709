#ifndef HIPS_HQ_PARAMETER_SERVER_OPTIONS_H_
#define HIPS_HQ_PARAMETER_SERVER_OPTIONS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "hq/trainer.h"
#include "services/models/optimizer.h"
#include "services/numeric/buffer_pool.h"
#include "services/rounds/norm_clipper.h"
#include "services/rounds/round_policy.h"
#include "services/time/clock.h"
#include "services/types/consistency.h"
#include "services/types/divergence.h"

namespace hips {

struct ParameterServerOptions {
  // Aggregates that make up one sync round (the number of aggregators).
  int expected_aggregators = 1;
  // At most this many aggregators live at once (0: expected_aggregators); an
  // aggregator beyond them is refused with RESOURCE_EXHAUSTED, and its
  // aggregates are not taken into rounds (docs/security.md).
  int max_aggregators = 0;
  // The most workers the cluster has (0: the protocol's bound): an
  // aggregate listing more contributors is refused.
  int max_workers = 0;
  // The most samples one worker gradient may stand for: an aggregate of n
  // contributors claiming more than n times this is refused.
  int64_t max_batch_samples = 1 << 16;
  // Sync rounds with a deadline: once `round_deadline` passed since a
  // round's first aggregate, it closes with at least `quorum_aggregators`
  // (0: all live ones, i.e. no early close).
  int quorum_aggregators = 0;
  absl::Duration round_deadline = absl::InfiniteDuration();
  // Training budget: the weights are final after this many versions or
  // applied samples, whichever comes first. 0 means no such budget. The
  // learning-rate schedule runs over the sample budget when there is one,
  // else over the version budget.
  int64_t max_versions = 0;
  int64_t max_samples = 0;
  // The mode at start (SetMode switches it later).
  ModeConfig mode;
  // --fedavg_algorithm=scaffold: HQ serves SCAFFOLD's control variate with
  // its weights (their layout is WithControlVariates of the model's;
  // services/numeric/scaffold.h), so the run trains in fedavg throughout:
  // another mode is refused at start and by SetMode.
  bool control_variates = false;
  // Async and ssp apply each update of n samples with lr·n/N, N being this
  // (the global batch of a sync round: the learning rate keeps its meaning
  // per sample across modes). 0: no scaling.
  int64_t lr_reference_samples = 0;
  // Async and ssp: how a gradient's staleness shrinks its learning rate.
  StalenessScaling staleness_lr = StalenessScaling::kSqrt;
  // Async and ssp (SGD only): the momentum of their updates, when below the
  // optimizer's (< 0: the optimizer's). Asynchrony itself acts like extra
  // momentum; the learning rate is scaled by (1 - this) / (1 - momentum) so
  // the long-run step lr / (1 - momentum) stays the same (docs/modes.md).
  double async_momentum = -1;
  // fedavg (SGD only): HQ's step with the mean of the workers' deltas is
  // w <- w - server_lr · v, v <- server_momentum · v + mean delta (FedAvgM;
  // 1 and 0 are plain FedAvg). The optimizer's learning rate, schedule,
  // momentum, Nesterov and weight decay are then the workers' local SGD
  // (sent with the weights as LocalSgd).
  double server_lr = 1.0;
  double server_momentum = 0.0;
  // Learning rate and its schedule (the optimizer's other settings are
  // baked into the Optimizer).
  OptimizerOptions optimizer;
  // Aggregators hold a lease of this length, renewed by heartbeats and
  // pushes; a sync round never waits for one whose lease expired, nor for
  // one that reports no live workers.
  absl::Duration lease = absl::Seconds(2);
  // Identifies this run of HQ in its weights (0: NewIncarnation()).
  int64_t incarnation = 0;
  // Checkpoints (when the owner takes them, see ParameterServer's
  // on_checkpoint): every this many versions and/or this long since the
  // last one (0: not on that account), and always with the final weights.
  int64_t checkpoint_every_versions = 0;
  absl::Duration checkpoint_every = absl::ZeroDuration();
  // What HQ does when the run diverges (docs/faults.md, "Divergence").
  DivergenceOptions divergence;
  // Bounded influence (docs/security.md): an aggregate whose L2 norm per
  // sample is above this bound is scaled down to it (--clip_norm; off).
  ClipNorm clip_norm{ClipNorm::Kind::kOff};
  // Where time comes from (leases, round deadlines, long polls, checkpoint
  // intervals); must outlive the server.
  Clock* clock = SystemClock();
};

// INVALID_ARGUMENT for an option out of range, or a mode the optimizer
// cannot train in.
absl::Status ValidateParameterServerOptions(const ParameterServerOptions& options);

// The budget, optimizer and starting mode of HQ's Trainer.
TrainerOptions TrainerOptionsOf(const ParameterServerOptions& options);

// What HQ's round policy needs for `mode` and a model of `num_floats`
// floats; `spares` is its pool of sum buffers.
RoundPolicyOptions PolicyOptionsOf(const ParameterServerOptions& options, const ModeConfig& mode,
                                   size_t num_floats, BufferPool* spares);

}  // namespace hips

#endif  // HIPS_HQ_PARAMETER_SERVER_OPTIONS_H_
