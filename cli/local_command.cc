// hips local: a whole cluster as processes on 127.0.0.1, trained to the
// budget (cli/local_cluster.h), its summary printed.

#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/child_flags.h"
#include "cli/child_process.h"
#include "cli/cli_flags.h"
#include "cli/commands.h"
#include "cli/local_cluster.h"
#include "services/data/dataset.h"
#include "services/data/partition.h"
#include "services/core/quarantine.h"
#include "services/numeric/robust_mean.h"
#include "services/rounds/norm_clipper.h"
#include "services/rounds/round_policy.h"
#include "services/runtime/aggregator_flags.h"
#include "services/runtime/compression_flags.h"
#include "services/runtime/hq_flags.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/round_flags.h"
#include "services/runtime/training_flags.h"
#include "services/runtime/worker_flags.h"
#include "services/types/consistency.h"

namespace hips {
namespace {

// The most homes hips local runs (each costs a lease, a shard and a few KB).
constexpr int kMaxLocalHomes = 100000;

template <typename T>
T OrExit(absl::StatusOr<T> value) {
  if (!value.ok()) ExitWithUsageError(std::string(value.status().message()));
  return *std::move(value);
}

// The tree's shape and the budget.
void SetShapeAndBudget(LocalClusterOptions* o) {
  o->aggregators = absl::GetFlag(FLAGS_aggregators);
  o->workers = absl::GetFlag(FLAGS_workers);
  o->homes = absl::GetFlag(FLAGS_homes);
  if (o->homes < 0 || o->homes > kMaxLocalHomes) {
    ExitWithUsageError(absl::StrCat("--homes must be in [0, ", kMaxLocalHomes, "], got ", o->homes));
  }
  const absl::CommandLineFlag* workers = absl::FindCommandLineFlag("workers");
  if (o->homes > 0 && workers->CurrentValue() == workers->DefaultValue()) {
    // Processes to compute on every core, and at least one per aggregator
    // (--workers at its default counts as not given).
    const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    o->workers = std::max(o->aggregators, std::min(o->homes, cores));
  }
  if (o->aggregators < 1 || o->workers < o->aggregators) {
    ExitWithUsageError("need --aggregators >= 1 and --workers >= --aggregators");
  }
  if (o->homes > 0 && (o->homes < o->workers ||
                       (o->homes + o->workers - 1) / o->workers > kMaxHostedHomes)) {
    ExitWithUsageError(absl::StrCat("--homes=", o->homes, " over --workers=", o->workers,
                                    " processes: each must host 1 to ", kMaxHostedHomes,
                                    " homes"));
  }
  o->batch_size = absl::GetFlag(FLAGS_batch_size);
  if (absl::GetFlag(FLAGS_max_versions) > 0) {
    o->max_versions = absl::GetFlag(FLAGS_max_versions);
  } else {
    o->max_samples = SampleBudgetFromFlags();
  }
}

// The mode and what shapes it, checked here (as HQ would) so that a bad one
// fails before anything starts. Returns the mode.
ModeConfig SetMode(LocalClusterOptions* o) {
  const ModeConfig mode = OrExit(ModeConfigFromFlags());
  OrExit(ServerStepFromFlags());
  OrExit(WeightsCompressionFromFlags());
  OrExit(DivergenceOptionsFromFlags());
  OrExit(ParseStalenessScaling(absl::GetFlag(FLAGS_staleness_lr)));
  OrExit(CompressionOptionsFromFlags());
  if (absl::Status s = CheckModeFitsOptimizer(mode, absl::GetFlag(FLAGS_optimizer)); !s.ok()) {
    ExitWithUsageError(std::string(s.message()));
  }
  if (absl::Status s = CheckModeFitsControlVariates(mode, OrExit(ControlVariatesFromFlags()));
      !s.ok()) {
    ExitWithUsageError(std::string(s.message()));
  }
  // A fedavg push stands for all of a round's local batches.
  o->samples_per_push = o->batch_size * mode.local_steps;
  o->lr_reference_samples = absl::GetFlag(FLAGS_async_lr_batch) >= 0 ? absl::GetFlag(FLAGS_async_lr_batch)
                            : o->homes > 0 ? o->homes * o->batch_size
                                           : GlobalBatchFromFlags();
  return mode;
}

// Backup workers and stragglers.
void SetRounds(LocalClusterOptions* o) {
  o->round_deadline_ms = absl::GetFlag(FLAGS_round_deadline_ms);
  o->backup_workers = absl::GetFlag(FLAGS_backup_workers);
  // (The aggregators take them as they are: checked here, before anything starts.)
  if (absl::StatusOr<ClipNorm> clip = ParseClipNorm(absl::GetFlag(FLAGS_clip_norm)); !clip.ok()) {
    ExitWithUsageError(std::string(clip.status().message()));
  }
  if (absl::StatusOr<ClipNorm> cap = ParseRunningBound(
          absl::GetFlag(FLAGS_max_samples_per_push), "--max_samples_per_push", kSampleCapMultiple);
      !cap.ok()) {
    ExitWithUsageError(std::string(cap.status().message()));
  }
  if (absl::StatusOr<RobustMean::Kind> robust = ParseRobust(absl::GetFlag(FLAGS_robust));
      !robust.ok()) {
    ExitWithUsageError(std::string(robust.status().message()));
  }
  if (absl::Status s = ValidateTrimFraction(absl::GetFlag(FLAGS_trim_fraction)); !s.ok()) {
    ExitWithUsageError(std::string(s.message()));
  }
  if (absl::Status s = ValidateQuarantineMs(absl::GetFlag(FLAGS_quarantine_ms)); !s.ok()) {
    ExitWithUsageError(std::string(s.message()));
  }
  if (o->backup_workers < 0 || o->round_deadline_ms < 0 || absl::GetFlag(FLAGS_coalesce_ms) < 0) {
    ExitWithUsageError("--backup_workers, --round_deadline_ms and --coalesce_ms must be >= 0");
  }
  if (o->backup_workers > 0 && o->round_deadline_ms == 0) o->round_deadline_ms = 20;
  for (const std::string& index : absl::GetFlag(FLAGS_slow_workers)) {
    int k = -1;
    if (!absl::SimpleAtoi(index, &k) || k < 0 || k >= o->workers) {
      ExitWithUsageError(absl::StrCat("--slow_workers: no worker '", index, "'"));
    }
    o->slow_workers.insert(k);
  }
  o->slowdown = absl::GetFlag(FLAGS_slowdown);
  o->step_delay_ms = absl::GetFlag(FLAGS_step_delay_ms);
}

// Supervision, checkpoints, directories, transports, progress.
void SetRunning(LocalClusterOptions* o) {
  if (absl::GetFlag(FLAGS_max_restarts) < 0 || absl::GetFlag(FLAGS_lease_ms) <= 0) {
    ExitWithUsageError("--max_restarts must be >= 0 and --lease_ms positive");
  }
  o->max_restarts = absl::GetFlag(FLAGS_supervise) ? absl::GetFlag(FLAGS_max_restarts) : 0;
  o->lease = absl::Milliseconds(absl::GetFlag(FLAGS_lease_ms));
  o->checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
  o->resume = absl::GetFlag(FLAGS_resume);
  o->metrics_targets = absl::GetFlag(FLAGS_metrics_targets);
  o->bin_dir = absl::GetFlag(FLAGS_bin_dir).empty() ? OwnDirectory() : absl::GetFlag(FLAGS_bin_dir);
  if (absl::GetFlag(FLAGS_data) == "fashion-mnist") {
    o->unpack_data_from = absl::GetFlag(FLAGS_data_dir);
  }
  o->unix_sockets = absl::GetFlag(FLAGS_unix_sockets);
  o->tls = absl::GetFlag(FLAGS_tls);
  if (!(absl::GetFlag(FLAGS_progress_seconds) > 0)) {
    ExitWithUsageError("--progress_seconds must be positive");
  }
  o->progress_every = absl::Seconds(absl::GetFlag(FLAGS_progress_seconds));
}

// Its --run_dir, or a new directory in /tmp; an error if it cannot be made.
absl::Status MakeRunDir(LocalClusterOptions* o) {
  o->run_dir = absl::GetFlag(FLAGS_run_dir);
  if (o->run_dir.empty()) {
    char tmpl[] = "/tmp/hips-local-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      return absl::InternalError(
          absl::StrCat("cannot create a run directory: ", std::strerror(errno)));
    }
    o->run_dir = tmpl;
  }
  std::error_code error;
  std::filesystem::create_directories(o->run_dir, error);
  if (error) {
    return absl::InternalError(absl::StrCat("cannot create ", o->run_dir, ": ", error.message()));
  }
  return absl::OkStatus();
}

void PrintHeader(const LocalClusterOptions& o, const ModeConfig& mode) {
  const std::string budget = o.max_versions > 0 ? absl::StrCat(o.max_versions, " versions")
                                                : absl::StrCat(o.max_samples, " samples");
  std::string extras;
  if (o.backup_workers > 0) {
    absl::StrAppend(&extras, ", ", o.backup_workers, " backup worker(s) per aggregator");
  }
  if (o.round_deadline_ms > 0)
    absl::StrAppend(&extras, ", round deadline ", o.round_deadline_ms, " ms");
  if (!o.slow_workers.empty()) {
    absl::StrAppend(&extras, ", stragglers ", absl::StrJoin(o.slow_workers, ","));
  }
  const std::string homes = o.homes > 0 ? absl::StrCat(" hosting ", o.homes, " homes") : "";
  std::printf(
      "hips local: %d workers%s x %lld examples, %d aggregators, model %s, mode %s, "
      "budget %s%s\n",
      o.workers, homes.c_str(), static_cast<long long>(o.batch_size), o.aggregators,
      absl::GetFlag(FLAGS_model).c_str(), DescribeMode(mode).c_str(), budget.c_str(),
      extras.c_str());
  std::fflush(stdout);
}

// hips local --export: hips export of the run's last checkpoint (HQ writes
// one when training is done), in a child process (this one has no LibTorch).
int ExportRun(const LocalClusterOptions& o) {
  absl::StatusOr<std::string> checkpoint = CheckpointFile(CheckpointDirOf(o));
  if (!checkpoint.ok()) {
    std::fprintf(stderr, "hips local --export: %s\n",
                 std::string(checkpoint.status().message()).c_str());
    return 1;
  }
  const std::string log = absl::StrCat(o.run_dir, "/export.log");
  absl::StatusOr<std::unique_ptr<ChildProcess>> child = ChildProcess::Spawn(
      "export",
      {absl::StrCat(o.bin_dir, "/hips-train"), "export", absl::StrCat("--checkpoint=", *checkpoint),
       absl::StrCat("--model_file=", absl::GetFlag(FLAGS_model_file)),
       absl::StrCat("--out=", absl::GetFlag(FLAGS_export))},
      log);
  if (!child.ok()) {
    std::fprintf(stderr, "hips local --export: %s\n",
                 std::string(child.status().message()).c_str());
    return 1;
  }
  (*child)->WaitOrKill(absl::Now() + absl::Minutes(5));
  if (!(*child)->ExitedCleanly()) {
    std::fprintf(stderr, "hips local --export: %s (%s):\n%s\n", (*child)->DescribeExit().c_str(),
                 log.c_str(), TailOfFile(log, 5).c_str());
    return 1;
  }
  std::printf("exported %s to %s\n", checkpoint->c_str(), absl::GetFlag(FLAGS_export).c_str());
  return 0;
}

// How the homes' data is split, checked as the workers will split it, and
// its spread, in one line (empty for regression targets under iid). Exits 2
// for a split the data cannot give (a home short of a batch).
std::string PartitionLine(const LocalClusterOptions& o) {
  const Partition partition = OrExit(PartitionFromFlags());
  absl::StatusOr<std::vector<int64_t>> labels = LoadTrainingLabels(DataOptionsFromFlags());
  if (!labels.ok()) {
    if (partition.kind == Partition::Kind::kIid) return "";
    ExitWithUsageError(absl::StrCat("--partition=", DescribePartition(partition), ": ",
                                    labels.status().message()));
  }
  const std::vector<std::vector<int64_t>> homes = OrExit(PartitionExamples(
      *labels, HomesOfRun(o), partition, absl::GetFlag(FLAGS_seed), o.batch_size));
  for (size_t h = 0; h < homes.size(); ++h) {
    if (static_cast<int64_t>(homes[h].size()) < o.batch_size) {
      ExitWithUsageError(absl::StrCat("--partition=", DescribePartition(partition),
                                      " gives home ", h, " only ", homes[h].size(),
                                      " examples, fewer than --batch_size=", o.batch_size));
    }
  }
  return absl::StrCat("hips local: data ", DescribePartition(partition), ", ",
                      DescribeLabelSpread(*labels, homes), "\n");
}

}  // namespace

int RunLocalCommand() {
  std::atomic<bool> interrupted{false};
  TerminationWatcher watcher([&interrupted](int) { interrupted.store(true); });
  if (!absl::GetFlag(FLAGS_export).empty() && absl::GetFlag(FLAGS_model) != "torchscript") {
    ExitWithUsageError(
        "--export writes the trained TorchScript module: it needs --model=torchscript "
        "--model_file=PATH");
  }
  LocalClusterOptions options;
  SetShapeAndBudget(&options);
  const ModeConfig mode = SetMode(&options);
  SetRounds(&options);
  SetRunning(&options);
  options.hq_flags = ChildFlagArgs(Tier::kHq);
  options.aggregator_flags = ChildFlagArgs(Tier::kAggregator);
  options.worker_flags = ChildFlagArgs(Tier::kWorker);
  const std::string partition = PartitionLine(options);
  if (absl::Status s = MakeRunDir(&options); !s.ok()) {
    std::fprintf(stderr, "hips: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  PrintHeader(options, mode);
  std::printf("%s", partition.c_str());
  std::fflush(stdout);
  absl::StatusOr<RunSummary> summary = RunLocalCluster(options, &interrupted);
  if (!summary.ok()) {
    std::fprintf(stderr, "hips local: %s\n", std::string(summary.status().message()).c_str());
    return absl::IsCancelled(summary.status()) ? 130 : 1;
  }
  const int finished = FinishRun(*summary);
  if (finished != 0 || absl::GetFlag(FLAGS_export).empty()) return finished;
  return ExportRun(options);
}

}  // namespace hips
