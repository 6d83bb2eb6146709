// hips-hq: the HQ tier (NPDC). Owns the master weights and the optimizer, turns
// aggregates into versions (sync, async or ssp), broadcasts weights,
// evaluates on the test set, serves the admin API (SetMode).

#include <algorithm>
#include <string>

#include "absl/flags/flag.h"
#include "glog/logging.h"
#include "hq/hq_daemon.h"
#include "services/runtime/daemon_flags.h"
#include "services/runtime/daemon_runner.h"
#include "services/runtime/hq_flags.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/round_flags.h"
#include "services/runtime/serve_flags.h"
#include "services/runtime/training_flags.h"

ABSL_FLAG(int, aggregators, 1,
          "The quorum of aggregators that opens HQ's first round: it waits for this many to "
          "join; after it, a round is over the aggregators live when it opens, and one that "
          "registers joins from the next (docs/modes.md, \"Elastic membership\").");
ABSL_FLAG(int, max_aggregators, 0,
          "At most this many aggregators live at once; more are refused with "
          "RESOURCE_EXHAUSTED (0: --aggregators, but at least 64, room for MDCs that join).");
ABSL_FLAG(int64_t, max_samples, 0,
          "Training budget in applied samples (0: none). The learning-rate schedule runs over "
          "it when set, else over --max_versions.");
ABSL_FLAG(int64_t, async_lr_batch, 0,
          "async/ssp: an update of n samples uses lr*n/N with N this value, so the learning "
          "rate keeps its per-sample meaning across modes (0: no scaling).");
ABSL_FLAG(int64_t, checkpoint_every_versions, 100,
          "Checkpoint every N versions (0: not by count).");
ABSL_FLAG(double, checkpoint_every_s, 30,
          "Checkpoint at least this often, in seconds (0: not by time).");
ABSL_FLAG(int, checkpoint_keep, 3, "Checkpoints kept (the newest).");
ABSL_FLAG(bool, resume, true, "Resume from the newest valid checkpoint in --checkpoint_dir.");

namespace {

// Turns a flag's value into a usage error (exit 2) when it does not parse.
template <typename T>
T OrExit(absl::StatusOr<T> value) {
  if (!value.ok()) hips::ExitWithUsageError(std::string(value.status().message()));
  return *std::move(value);
}

hips::ParameterServerOptions ServerOptionsFromFlags() {
  hips::ParameterServerOptions o;
  o.expected_aggregators = absl::GetFlag(FLAGS_aggregators);
  o.max_aggregators = absl::GetFlag(FLAGS_max_aggregators);
  // MDCs may join a running cluster: room for more than the quorum.
  if (o.max_aggregators == 0) o.max_aggregators = std::max(o.expected_aggregators, 64);
  o.max_workers = absl::GetFlag(FLAGS_max_workers);
  o.max_batch_samples = absl::GetFlag(FLAGS_max_batch_samples);
  o.max_versions = absl::GetFlag(FLAGS_max_versions);
  o.max_samples = absl::GetFlag(FLAGS_max_samples);
  o.mode = OrExit(hips::ModeConfigFromFlags());
  o.control_variates = OrExit(hips::ControlVariatesFromFlags());
  const hips::ServerStepFlags step = OrExit(hips::ServerStepFromFlags());
  o.server_lr = step.lr;
  o.server_momentum = step.momentum;
  o.quorum_aggregators = absl::GetFlag(FLAGS_quorum);
  const int64_t deadline_ms = absl::GetFlag(FLAGS_round_deadline_ms);
  o.round_deadline = deadline_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(deadline_ms);
  o.lr_reference_samples = absl::GetFlag(FLAGS_async_lr_batch);
  o.lease = absl::Milliseconds(absl::GetFlag(FLAGS_lease_ms));
  o.checkpoint_every_versions = absl::GetFlag(FLAGS_checkpoint_every_versions);
  o.checkpoint_every = absl::Seconds(absl::GetFlag(FLAGS_checkpoint_every_s));
  o.staleness_lr = OrExit(hips::ParseStalenessScaling(absl::GetFlag(FLAGS_staleness_lr)));
  o.async_momentum = absl::GetFlag(FLAGS_async_momentum);
  o.divergence = OrExit(hips::DivergenceOptionsFromFlags());
  o.clip_norm = OrExit(hips::ParseClipNorm(absl::GetFlag(FLAGS_clip_norm)));
  return o;
}

hips::HqDaemonOptions OptionsFromFlags() {
  hips::HqDaemonOptions o;
  o.server = ServerOptionsFromFlags();
  o.weights_compression = OrExit(hips::WeightsCompressionFromFlags());
  o.checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
  o.checkpoint_keep = absl::GetFlag(FLAGS_checkpoint_keep);
  o.resume = absl::GetFlag(FLAGS_resume);
  o.model = hips::ModelOptionsFromFlags();
  o.optimizer = hips::OptimizerOptionsFromFlags();
  o.data = hips::DataOptionsFromFlags();
  o.seed = absl::GetFlag(FLAGS_seed);
  o.eval_every = absl::GetFlag(FLAGS_eval_every);
  o.serve = hips::ServeOptionsFromFlags();
  o.chunk_bytes = static_cast<size_t>(absl::GetFlag(FLAGS_chunk_bytes));
  o.sum_threads = absl::GetFlag(FLAGS_sum_threads);
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  hips::InitDaemonProcess(
      argc, argv,
      {"hips-hq",
       "the HQ tier of hips",
       {{"",
         "hips-hq --aggregators=A [--max_versions=V] [--port=P] [model flags]",
         "Owns the master weights and the optimizer: applies the aggregators' sums, publishes\n"
         "each version, checkpoints and evaluates on the test set.",
         {},
         {"*"}}}});
  hips::DaemonRunner runner;
  hips::SetTorchThreads(absl::GetFlag(FLAGS_torch_threads));
  return runner.Run<hips::HqDaemon>(OptionsFromFlags(), [](hips::HqDaemon& d) {
    LOG(INFO) << "stopping at version " << d.server().status().version;
  });
}
