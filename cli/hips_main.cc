// hips: the operator CLI.
//   hips local [flags]            a whole cluster as local processes on 127.0.0.1
//   hips train --monolith [flags] the single-process reference run
//   hips mode MODE --hq ADDR      switch a running cluster's consistency mode
//   hips status --hq ADDR [--json] the live tree: versions, staleness, samples/s, last seen

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "cli/child_process.h"
#include "cli/cluster_status.h"
#include "cli/local_cluster.h"
#include "cli/run_credentials.h"
#include "cli/run_summary.h"
#include "glog/logging.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/net/address.h"
#include "services/net/grpc_util.h"
#include "services/net/health.h"
#include "services/net/proto_convert.h"
#include "services/runtime/compression_flags.h"
#include "services/runtime/fedavg_flags.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/security_flags.h"
#include "services/runtime/training_flags.h"
#include "services/types/consistency.h"
#ifdef HIPS_WITH_MONOLITH
#include "cli/monolith.h"
#include "services/models/checkpoint_codec.h"
#endif

ABSL_FLAG(int, aggregators, 2, "hips local: number of aggregators.");
ABSL_FLAG(int, workers, 4, "Number of workers (the monolith trains on their union batch).");
ABSL_FLAG(int64_t, batch_size, 64, "Examples per worker per step.");
ABSL_FLAG(double, epochs, 10.0, "Training budget in epochs over the training set.");
ABSL_FLAG(int64_t, max_versions, 0, "Training budget in versions; overrides --epochs when > 0.");
ABSL_FLAG(int64_t, eval_every, 100, "hips local: evaluate every N versions.");
ABSL_FLAG(std::string, summary_json, "", "Also write the final summary as JSON here.");
ABSL_FLAG(std::string, run_dir, "", "hips local: directory for logs (default: a new /tmp dir).");
ABSL_FLAG(std::string, bin_dir, "", "hips local: where the daemons are (default: beside hips).");
ABSL_FLAG(double, progress_seconds, 3.0, "hips local: seconds between progress lines.");
ABSL_FLAG(bool, monolith, false, "hips train: run the single-process reference.");
ABSL_FLAG(std::string, checkpoint, "",
          "hips export: a checkpoint file of HQ's, or a checkpoint directory (its newest).");
ABSL_FLAG(std::string, out, "", "hips export: where to write the trained TorchScript module.");
ABSL_FLAG(std::string, export, "",
          "hips local: at the end, write the trained module here (as hips export; needs "
          "--model=torchscript).");
ABSL_FLAG(std::string, mode, "sync",
          "hips local: consistency mode at start (sync, async, ssp, fedavg).");
ABSL_FLAG(int64_t, staleness, 2, "ssp: largest staleness (in versions) of an applied gradient.");
ABSL_FLAG(double, async_momentum, 0.5,
          "async/ssp with SGD: momentum of their updates when below --momentum; the rate is "
          "scaled to keep lr/(1-momentum) (-1: off).");
ABSL_FLAG(std::string, staleness_lr, "sqrt",
          "async/ssp: shrink a stale gradient's learning rate: none, inverse or sqrt.");
ABSL_FLAG(int64_t, async_lr_batch, -1,
          "async/ssp: an update of n samples uses lr*n/N with N this value (-1: workers * "
          "batch_size, the global batch of a sync round; 0: no scaling).");
ABSL_FLAG(int64_t, coalesce_ms, 0,
          "async/ssp: aggregators sum gradients of one version arriving within this window.");
ABSL_FLAG(int, backup_workers, 0,
          "sync: each aggregator closes a round at its deadline with all but this many of its "
          "workers.");
ABSL_FLAG(int64_t, round_deadline_ms, 0,
          "sync: a round closes this long after its first gradient if a quorum arrived (0: "
          "wait for all; with --backup_workers the default is 20).");
ABSL_FLAG(std::vector<std::string>, slow_workers, {},
          "Straggler injection: indices of workers to slow down (comma-separated).");
ABSL_FLAG(double, slowdown, 10.0, "Straggler injection: factor for --slow_workers.");
ABSL_FLAG(int64_t, step_delay_ms, 0,
          "Straggler injection: extra delay per step for --slow_workers.");
ABSL_FLAG(std::string, hq, "", "hips mode, hips status: HQ address, host:port.");
ABSL_FLAG(bool, json, false, "hips status: print JSON instead of a table.");
ABSL_FLAG(bool, supervise, true,
          "hips local: restart a child that dies (same flags and port; HQ resumes from its "
          "newest checkpoint). false: a death fails the run.");
ABSL_FLAG(int, max_restarts, 10, "hips local: restarts per child before the run fails.");
ABSL_FLAG(bool, tls, false,
          "hips local: every channel with mutual TLS (a throwaway CA and a certificate per "
          "process, made with openssl in the run dir).");
ABSL_FLAG(bool, unix_sockets, false,
          "hips local: tensors between the tiers over Unix sockets in the run dir, not TCP.");
ABSL_FLAG(int64_t, lease_ms, 2000,
          "hips local: members' lease; a sync round stops waiting for a worker or aggregator "
          "not heard from for this long.");
ABSL_FLAG(std::string, checkpoint_dir, "",
          "hips local: HQ's checkpoints (default: <run_dir>/checkpoints).");
ABSL_FLAG(std::string, metrics_targets, "",
          "hips local: write the /metrics addresses of every process here, as a Prometheus "
          "file_sd JSON list (deploy/prometheus).");
ABSL_FLAG(bool, resume, false,
          "hips local: continue the run whose checkpoints are in the checkpoint directory "
          "(without it, a directory holding checkpoints is refused).");

ABSL_FLAG(std::string, service, "",
          "hips health: the service to ask about (\"\": the daemon as a whole; "
          "hips.v1.Hq or hips.v1.Aggregator).");
ABSL_FLAG(int64_t, timeout_ms, 2000, "hips health: how long to wait for the answer.");
ABSL_FLAG(bool, live, false,
          "hips health: exit 0 when the daemon answers at all, SERVING or NOT_SERVING (a "
          "liveness probe: an aggregator waiting for HQ is alive, not ready).");

namespace {

// The subcommands and the flags each takes (hips SUBCOMMAND --help).
hips::ProgramHelp Help() {
  const std::vector<std::string> training = {"services/runtime/training_flags.cc"};
  std::vector<std::string> local_files = training;
  local_files.push_back("services/runtime/compression_flags.cc");
  local_files.push_back("services/runtime/fedavg_flags.cc");
  return {
      "hips",
      "the operator CLI of hips, a hierarchical parameter server",
      {{"local",
        "hips local [--workers=4 --aggregators=2 --epochs=10 --mode=sync|async|ssp|fedavg ...]",
        "Starts a whole cluster (HQ, aggregators, workers) as processes on 127.0.0.1, trains\n"
        "to the budget and prints the final accuracy.",
        {"aggregators",   "workers",        "batch_size",        "epochs",       "max_versions",
         "eval_every",    "summary_json",   "run_dir",           "bin_dir",      "progress_seconds",
         "mode",          "staleness",      "async_momentum",    "staleness_lr", "async_lr_batch",
         "coalesce_ms",   "backup_workers", "round_deadline_ms", "slow_workers", "slowdown",
         "step_delay_ms", "supervise",      "max_restarts",      "unix_sockets", "tls",
         "lease_ms",      "checkpoint_dir", "metrics_targets",   "resume",       "export"},
        local_files},
       {"train",
        "hips train --monolith [--workers=4 --batch_size=64 --epochs=10 ...]",
        "The single-process reference: the same model, data, seed and hyperparameters, each\n"
        "step on the union of the batches the workers would draw.",
        {"monolith", "workers", "batch_size", "epochs", "max_versions", "summary_json"},
        training},
       {"export",
        "hips export --checkpoint=PATH --model_file=PATH --out=trained.pt",
        "Writes the module of --model_file with the weights and buffers of HQ's checkpoint\n"
        "(a file, or the newest in a directory): a TorchScript file for torch.jit.load, in\n"
        "eval mode. The checkpoint must be of that module's layout.",
        {"checkpoint", "out", "model_file"},
        {}},
       {"mode",
        "hips mode sync|async|ssp|fedavg [--staleness=S] [--local_steps=H --participation=F "
        "--edge_rounds=E] "
        "--hq=HOST:PORT (--run_dir=DIR | --admin_token_file=F)",
        "Switches a running cluster's consistency mode at its next version. An admin call:\n"
        "it presents the admin token of the hips local run in --run_dir, or the flags'.",
        {"hq", "staleness", "local_steps", "participation", "edge_rounds", "run_dir"},
        {"services/runtime/security_flags.cc"}},
       {"health",
        "hips health HOST:PORT [--service=NAME] [--live] [--timeout_ms=2000] [--tls_ca=F ...]",
        "Asks a daemon's gRPC health service (grpc.health.v1) whether it serves: exit 0 when\n"
        "SERVING (with --live: when it answers at all), 1 when not (or unreachable), 2 for bad\n"
        "flags. No token needed; against TLS it verifies with --tls_ca (and presents\n"
        "--tls_cert for mutual TLS).",
        {"service", "timeout_ms", "live", "check_flags"},
        {"services/runtime/security_flags.cc"}},
       {"status",
        "hips status --hq=HOST:PORT (--run_dir=DIR | --token_file=F) [--json]",
        "Prints the live tree: versions, staleness, samples/s and last seen of every member.\n"
        "It presents the cluster token of the hips local run in --run_dir, or the flags'.",
        {"hq", "json", "run_dir"},
        {"services/runtime/security_flags.cc"}}}};
}

std::string OwnDirectory() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, n);
  return path.substr(0, path.rfind('/'));
}

int64_t GlobalBatch() {
  const int64_t global_batch = absl::GetFlag(FLAGS_workers) * absl::GetFlag(FLAGS_batch_size);
  if (global_batch <= 0) hips::ExitWithUsageError("--workers and --batch_size must be positive");
  return global_batch;
}

// --epochs over the training set, in samples.
int64_t SampleBudget() {
  const double epochs = absl::GetFlag(FLAGS_epochs);
  if (!(epochs > 0)) hips::ExitWithUsageError("--epochs must be positive");
  absl::StatusOr<int64_t> examples =
      hips::CountTrainingExamples(hips::DataOptionsFromFlagsOrExit());
  if (!examples.ok()) hips::ExitWithUsageError(std::string(examples.status().message()));
  return std::max<int64_t>(1, std::llround(epochs * (*examples)));
}

#ifdef HIPS_WITH_MONOLITH
// Steps of the global batch: --max_versions, or --epochs rounded up.
int64_t VersionBudget() {
  if (absl::GetFlag(FLAGS_max_versions) > 0) return absl::GetFlag(FLAGS_max_versions);
  const int64_t global_batch = GlobalBatch();
  return (SampleBudget() + global_batch - 1) / global_batch;
}
#endif

std::string Describe(const hips::RunSummary::Accounting& a) {
  std::string dropped;
  for (const auto& [reason, count] : a.dropped) absl::StrAppend(&dropped, " ", reason, "=", count);
  std::string out = absl::StrCat("gradients: received=", a.received, " applied=", a.applied,
                                 " duplicate=", a.duplicate, " pending=", a.pending, " dropped{",
                                 dropped.empty() ? "" : dropped.substr(1),
                                 "} max_staleness=", a.max_staleness, " mode=", a.mode);
  for (const hips::RunSummary::Accounting::Aggregator& g : a.aggregators) {
    std::string agg_dropped;
    for (const auto& [reason, count] : g.dropped) {
      absl::StrAppend(&agg_dropped, " ", reason, "=", count);
    }
    absl::StrAppend(&out, "\n  ", g.id, ": received=", g.received, " duplicate=", g.duplicate,
                    " forwarded=", g.forwarded, " pending=", g.pending, " dropped{",
                    agg_dropped.empty() ? "" : agg_dropped.substr(1), "}");
    if (g.edge_applied > 0) absl::StrAppend(&out, " edge_applied=", g.edge_applied);
  }
  return out;
}

int Finish(const hips::RunSummary& summary) {
  const std::string json = absl::GetFlag(FLAGS_summary_json);
  if (!json.empty()) {
    if (absl::Status s = hips::WriteSummaryJson(json, summary); !s.ok()) {
      std::fprintf(stderr, "hips: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  if (summary.accounting.has_value()) {
    std::printf("%s\n", Describe(*summary.accounting).c_str());
  }
  std::printf("%s\n", hips::FinalLine(summary).c_str());
  std::fflush(stdout);
  return 0;
}

// The checkpoint `path` names: the file itself, or the newest
// checkpoint-<version>.pt of a directory (their names sort by version).
absl::StatusOr<std::string> CheckpointFile(const std::string& path) {
  std::error_code error;
  if (!std::filesystem::is_directory(path, error)) return path;
  std::string newest;
  for (const auto& entry : std::filesystem::directory_iterator(path, error)) {
    const std::string name = entry.path().filename().string();
    if (absl::StartsWith(name, "checkpoint-") && absl::EndsWith(name, ".pt") &&
        name > std::filesystem::path(newest).filename().string()) {
      newest = entry.path().string();
    }
  }
  if (newest.empty()) return absl::NotFoundError(absl::StrCat(path, " holds no checkpoint"));
  return newest;
}

// hips local --export: hips export of the run's last checkpoint (HQ writes
// one when training is done), in a child process (this one has no LibTorch).
int ExportRun(const hips::LocalClusterOptions& options) {
  const std::string dir = options.checkpoint_dir.empty()
                              ? absl::StrCat(options.run_dir, "/checkpoints")
                              : options.checkpoint_dir;
  absl::StatusOr<std::string> checkpoint = CheckpointFile(dir);
  if (!checkpoint.ok()) {
    std::fprintf(stderr, "hips local --export: %s\n",
                 std::string(checkpoint.status().message()).c_str());
    return 1;
  }
  const std::string log = absl::StrCat(options.run_dir, "/export.log");
  absl::StatusOr<std::unique_ptr<hips::ChildProcess>> child =
      hips::ChildProcess::Spawn("export",
                                {absl::StrCat(options.bin_dir, "/hips-train"), "export",
                                 absl::StrCat("--checkpoint=", *checkpoint),
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
                 log.c_str(), hips::TailOfFile(log, 5).c_str());
    return 1;
  }
  std::printf("exported %s to %s\n", checkpoint->c_str(), absl::GetFlag(FLAGS_export).c_str());
  return 0;
}

int RunLocal() {
  std::atomic<bool> interrupted{false};
  hips::TerminationWatcher watcher([&interrupted](int) { interrupted.store(true); });

  if (!absl::GetFlag(FLAGS_export).empty() && absl::GetFlag(FLAGS_model) != "torchscript") {
    hips::ExitWithUsageError(
        "--export writes the trained TorchScript module: it needs --model=torchscript "
        "--model_file=PATH");
  }
  hips::LocalClusterOptions options;
  options.aggregators = absl::GetFlag(FLAGS_aggregators);
  options.workers = absl::GetFlag(FLAGS_workers);
  if (options.aggregators < 1 || options.workers < options.aggregators) {
    hips::ExitWithUsageError("need --aggregators >= 1 and --workers >= --aggregators");
  }
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  if (absl::GetFlag(FLAGS_max_versions) > 0) {
    options.max_versions = absl::GetFlag(FLAGS_max_versions);
  } else {
    options.max_samples = SampleBudget();
  }
  absl::StatusOr<hips::ModeConfig> mode =
      hips::ModeConfigFromFlags(absl::GetFlag(FLAGS_mode), absl::GetFlag(FLAGS_staleness));
  if (!mode.ok()) hips::ExitWithUsageError(std::string(mode.status().message()));
  if (absl::Status s = hips::ServerStepFromFlags().status(); !s.ok()) {
    hips::ExitWithUsageError(std::string(s.message()));
  }
  if (absl::Status s = hips::WeightsCompressionFromFlags().status(); !s.ok()) {
    hips::ExitWithUsageError(std::string(s.message()));
  }
  if (mode->mode == hips::Mode::kFedAvg && absl::GetFlag(FLAGS_optimizer) != "sgd") {
    hips::ExitWithUsageError("--mode=fedavg runs SGD on the workers: it needs --optimizer=sgd");
  }
  // A fedavg push stands for all of a round's local batches.
  options.samples_per_push = options.batch_size * mode->local_steps;
  if (absl::Status s = hips::ParseStalenessScaling(absl::GetFlag(FLAGS_staleness_lr)).status();
      !s.ok()) {
    hips::ExitWithUsageError(std::string(s.message()));
  }
  const int64_t lr_batch =
      absl::GetFlag(FLAGS_async_lr_batch) < 0 ? GlobalBatch() : absl::GetFlag(FLAGS_async_lr_batch);
  int64_t deadline_ms = absl::GetFlag(FLAGS_round_deadline_ms);
  options.backup_workers = absl::GetFlag(FLAGS_backup_workers);
  if (options.backup_workers < 0 || deadline_ms < 0 || absl::GetFlag(FLAGS_coalesce_ms) < 0) {
    hips::ExitWithUsageError(
        "--backup_workers, --round_deadline_ms and --coalesce_ms must be >= 0");
  }
  if (options.backup_workers > 0 && deadline_ms == 0) deadline_ms = 20;
  options.hq_args = {absl::StrCat("--mode=", absl::GetFlag(FLAGS_mode)),
                     absl::StrCat("--staleness=", mode->staleness),
                     absl::StrCat("--async_lr_batch=", lr_batch),
                     absl::StrCat("--staleness_lr=", absl::GetFlag(FLAGS_staleness_lr)),
                     absl::StrCat("--async_momentum=", absl::GetFlag(FLAGS_async_momentum))};
  for (std::string& arg : hips::FedAvgFlagsAsArgs()) options.hq_args.push_back(std::move(arg));
  options.aggregator_args = {absl::StrCat("--round_deadline_ms=", deadline_ms),
                             absl::StrCat("--coalesce_ms=", absl::GetFlag(FLAGS_coalesce_ms))};
  for (const std::string& index : absl::GetFlag(FLAGS_slow_workers)) {
    int k = -1;
    if (!absl::SimpleAtoi(index, &k) || k < 0 || k >= options.workers) {
      hips::ExitWithUsageError(absl::StrCat("--slow_workers: no worker '", index, "'"));
    }
    options.worker_args[k] = {absl::StrCat("--slowdown=", absl::GetFlag(FLAGS_slowdown)),
                              absl::StrCat("--step_delay_ms=", absl::GetFlag(FLAGS_step_delay_ms))};
  }
  options.eval_every = absl::GetFlag(FLAGS_eval_every);
  if (absl::GetFlag(FLAGS_max_restarts) < 0 || absl::GetFlag(FLAGS_lease_ms) <= 0) {
    hips::ExitWithUsageError("--max_restarts must be >= 0 and --lease_ms positive");
  }
  options.max_restarts = absl::GetFlag(FLAGS_supervise) ? absl::GetFlag(FLAGS_max_restarts) : 0;
  options.lease_ms = absl::GetFlag(FLAGS_lease_ms);
  options.checkpoint_dir = absl::GetFlag(FLAGS_checkpoint_dir);
  options.resume = absl::GetFlag(FLAGS_resume);
  options.metrics_targets = absl::GetFlag(FLAGS_metrics_targets);
  options.bin_dir =
      absl::GetFlag(FLAGS_bin_dir).empty() ? OwnDirectory() : absl::GetFlag(FLAGS_bin_dir);
  options.run_dir = absl::GetFlag(FLAGS_run_dir);
  if (options.run_dir.empty()) {
    char tmpl[] = "/tmp/hips-local-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::fprintf(stderr, "hips: cannot create a run directory: %s\n", std::strerror(errno));
      return 1;
    }
    options.run_dir = tmpl;
  }
  {
    std::error_code error;
    std::filesystem::create_directories(options.run_dir, error);
    if (error) {
      std::fprintf(stderr, "hips: cannot create %s: %s\n", options.run_dir.c_str(),
                   error.message().c_str());
      return 1;
    }
  }
  options.training_args = hips::TrainingFlagsAsArgs();
  if (absl::GetFlag(FLAGS_data) == "fashion-mnist") {
    options.unpack_data_from = absl::GetFlag(FLAGS_data_dir);
  }
  if (absl::Status s = hips::CompressionOptionsFromFlags().status(); !s.ok()) {
    hips::ExitWithUsageError(std::string(s.message()));
  }
  options.push_args = hips::CompressionFlagsAsArgs();
  options.unix_sockets = absl::GetFlag(FLAGS_unix_sockets);
  options.tls = absl::GetFlag(FLAGS_tls);
  if (!(absl::GetFlag(FLAGS_progress_seconds) > 0)) {
    hips::ExitWithUsageError("--progress_seconds must be positive");
  }
  options.progress_every = absl::Seconds(absl::GetFlag(FLAGS_progress_seconds));
  std::string budget = options.max_versions > 0 ? absl::StrCat(options.max_versions, " versions")
                                                : absl::StrCat(options.max_samples, " samples");
  std::string extras;
  if (options.backup_workers > 0) {
    absl::StrAppend(&extras, ", ", options.backup_workers, " backup worker(s) per aggregator");
  }
  if (deadline_ms > 0) absl::StrAppend(&extras, ", round deadline ", deadline_ms, " ms");
  if (!options.worker_args.empty()) {
    absl::StrAppend(&extras, ", stragglers ",
                    absl::StrJoin(absl::GetFlag(FLAGS_slow_workers), ","));
  }
  std::printf(
      "hips local: %d workers x %lld examples, %d aggregators, model %s, mode %s, "
      "budget %s%s\n",
      options.workers, static_cast<long long>(options.batch_size), options.aggregators,
      absl::GetFlag(FLAGS_model).c_str(), hips::DescribeMode(*mode).c_str(), budget.c_str(),
      extras.c_str());
  std::fflush(stdout);

  absl::StatusOr<hips::RunSummary> summary = hips::RunLocalCluster(options, &interrupted);
  if (!summary.ok()) {
    std::fprintf(stderr, "hips local: %s\n", std::string(summary.status().message()).c_str());
    return absl::IsCancelled(summary.status()) ? 130 : 1;
  }
  const int finished = Finish(*summary);
  if (finished != 0 || absl::GetFlag(FLAGS_export).empty()) return finished;
  return ExportRun(options);
}

#ifdef HIPS_WITH_MONOLITH
int RunExport() {
  const std::string model_file = absl::GetFlag(FLAGS_model_file);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (absl::GetFlag(FLAGS_checkpoint).empty() || model_file.empty() || out.empty()) {
    hips::ExitWithUsageError("hips export needs --checkpoint, --model_file and --out");
  }
  absl::StatusOr<std::string> path = CheckpointFile(absl::GetFlag(FLAGS_checkpoint));
  if (!path.ok()) hips::ExitWithUsageError(std::string(path.status().message()));
  std::ifstream in(*path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.is_open() || in.bad()) {
    hips::ExitWithUsageError(absl::StrCat("--checkpoint ", *path, ": cannot read it"));
  }
  absl::StatusOr<hips::Checkpoint> checkpoint = hips::DecodeCheckpoint(bytes);
  if (!checkpoint.ok()) {
    hips::ExitWithUsageError(
        absl::StrCat("--checkpoint ", *path, ": ", checkpoint.status().message()));
  }
  const absl::Status s =
      hips::ExportTorchScript(checkpoint->layout, checkpoint->weights, model_file, out);
  if (absl::IsInvalidArgument(s)) hips::ExitWithUsageError(std::string(s.message()));
  if (!s.ok()) {
    std::fprintf(stderr, "hips export: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("hips export: %s (version %lld) -> %s\n", path->c_str(),
              static_cast<long long>(checkpoint->version), out.c_str());
  return 0;
}

int RunMonolith() {
  const absl::Time start = absl::Now();
  hips::SetTorchThreads(absl::GetFlag(FLAGS_torch_threads));
  hips::MonolithOptions options;
  options.model = hips::ModelOptionsFromFlags();
  options.optimizer = hips::OptimizerOptionsFromFlags();
  options.seed = absl::GetFlag(FLAGS_seed);
  options.num_workers = absl::GetFlag(FLAGS_workers);
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.steps = VersionBudget();
  const hips::DataOptions data = hips::DataOptionsFromFlagsOrExit();
  absl::StatusOr<hips::Dataset> train = hips::LoadData(data, hips::Split::kTrain);
  absl::StatusOr<hips::Dataset> test = hips::LoadData(data, hips::Split::kTest);
  if (!train.ok() || !test.ok()) {
    std::fprintf(stderr, "hips train: %s\n",
                 (train.ok() ? test.status() : train.status()).ToString().c_str());
    return 1;
  }
  std::printf("hips train --monolith: model %s, %lld steps of %lld examples\n",
              options.model.name.c_str(), static_cast<long long>(options.steps),
              static_cast<long long>(options.num_workers * options.batch_size));
  std::fflush(stdout);
  absl::StatusOr<hips::MonolithResult> result = hips::RunMonolith(options, *train, &*test);
  if (!result.ok()) {
    if (absl::IsInvalidArgument(result.status())) {
      hips::ExitWithUsageError(std::string(result.status().message()));
    }
    std::fprintf(stderr, "hips train: %s\n", result.status().ToString().c_str());
    return 1;
  }
  hips::RunSummary summary;
  summary.version = result->version;
  summary.SetMetrics(result->metrics);
  summary.samples = result->samples;
  summary.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return Finish(summary);
}
#else
// This binary does not link LibTorch: the monolith is hips-train beside it,
// the same program built with it, given the same arguments.
// (hips export too.)
int RunWithTorch(char** argv) {
  const std::string train = absl::StrCat(OwnDirectory(), "/hips-train");
  execv(train.c_str(), argv);
  std::fprintf(stderr, "hips %s: cannot run %s: %s\n", argv[1], train.c_str(),
               std::strerror(errno));
  return 1;
}
#endif

// What hips status and hips mode present: the security flags, or the files
// of the hips local run in --run_dir. Exits with a usage error if neither
// names a token.
hips::ClientCredentials OperatorCredentialsOrExit(bool admin) {
  absl::StatusOr<hips::ClientCredentials> credentials = hips::OperatorCredentials(
      hips::SecurityOptionsFromFlagsOrExit(), absl::GetFlag(FLAGS_run_dir), admin);
  if (!credentials.ok()) hips::ExitWithUsageError(std::string(credentials.status().message()));
  return *std::move(credentials);
}

int ShowStatus() {
  const std::string hq = absl::GetFlag(FLAGS_hq);
  if (hq.empty()) hips::ExitWithUsageError("hips status needs --hq=HOST:PORT");
  hips::ClusterStatusOptions options;
  options.hq = hq;
  options.credentials = OperatorCredentialsOrExit(/*admin=*/false);
  absl::StatusOr<std::string> out = absl::GetFlag(FLAGS_json) ? hips::ClusterStatusJson(options)
                                                              : hips::ClusterStatusTable(options);
  if (!out.ok()) {
    std::fprintf(stderr, "hips status: %s\n", out.status().ToString().c_str());
    return 1;
  }
  std::fputs(out->c_str(), stdout);
  return 0;
}

int CheckHealth(const std::string& address) {
  const int64_t timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
  if (timeout_ms <= 0 || timeout_ms > 600'000) {
    hips::ExitWithUsageError("--timeout_ms must be in [1, 600000]");
  }
  hips::ClientSecurity security;
  security.tls = hips::SecurityOptionsFromFlagsOrExit().tls;
  if (absl::Status s = hips::CheckDialAddress("hips health", address); !s.ok()) {
    hips::ExitWithUsageError(std::string(s.message()));
  }
  if (hips::CheckingFlagsOnly()) hips::ExitAfterFlagCheck(hips::CheckClientTls(security.tls));
  absl::StatusOr<hips::ClientCredentials> credentials = hips::MakeClientCredentials(security);
  if (!credentials.ok()) hips::ExitWithUsageError(std::string(credentials.status().message()));
  absl::StatusOr<hips::Health> health = hips::CheckHealth(
      address, absl::GetFlag(FLAGS_service), *credentials, absl::Milliseconds(timeout_ms));
  if (!health.ok()) {
    std::fprintf(stderr, "hips health: %s: %s\n", address.c_str(),
                 health.status().ToString().c_str());
    return 1;
  }
  std::printf("%s: %s\n", address.c_str(), hips::HealthName(*health));
  return *health == hips::Health::kServing || absl::GetFlag(FLAGS_live) ? 0 : 1;
}

int SwitchMode(const std::string& name) {
  absl::StatusOr<hips::ModeConfig> mode =
      hips::ModeConfigFromFlags(name, absl::GetFlag(FLAGS_staleness));
  if (!mode.ok()) hips::ExitWithUsageError(std::string(mode.status().message()));
  const std::string hq = absl::GetFlag(FLAGS_hq);
  if (hq.empty()) hips::ExitWithUsageError("hips mode needs --hq=HOST:PORT");
  const hips::ClientCredentials credentials = OperatorCredentialsOrExit(/*admin=*/true);
  std::unique_ptr<hips::v1::Hq::Stub> stub =
      hips::v1::Hq::NewStub(hips::CreateHipsChannel(hq, credentials));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  hips::Authenticate(&ctx, credentials.token);
  hips::v1::SetModeRequest req;
  hips::ModeToProto(*mode, req.mutable_mode());
  hips::v1::SetModeReply reply;
  const grpc::Status status = stub->SetMode(&ctx, req, &reply);
  if (!status.ok()) {
    std::fprintf(stderr, "hips mode: %s\n", hips::FromGrpcStatus(status).ToString().c_str());
    return 1;
  }
  absl::StatusOr<hips::ModeConfig> previous = hips::ModeFromProto(reply.previous());
  std::printf("mode %s from version %lld (was %s)\n", hips::DescribeMode(*mode).c_str(),
              static_cast<long long>(reply.effective_version()),
              previous.ok() ? hips::DescribeMode(*previous).c_str() : "unknown");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const hips::ProgramHelp help = Help();
  std::vector<char*> args = hips::InitProcess(argc, argv, help);
  if (args.size() < 2) {
    hips::ExitWithUsageError(absl::StrCat("no subcommand\n", hips::HelpText(help, "")));
  }
  const std::string command = args[1];
  // Of the subcommands only health runs in deployments (container probes).
  if (hips::CheckingFlagsOnly() && command != "health") {
    hips::ExitWithUsageError(
        absl::StrCat("--check_flags is for the daemons and hips health, not hips ", command));
  }
  if (command == "mode") {
    if (args.size() != 3) {
      hips::ExitWithUsageError("hips mode takes one mode: sync, async or ssp");
    }
    return SwitchMode(args[2]);
  }
  if (command == "health") {
    if (args.size() != 3) hips::ExitWithUsageError("hips health takes one address, HOST:PORT");
    return CheckHealth(args[2]);
  }
  if (args.size() > 2) {
    hips::ExitWithUsageError(absl::StrCat("unexpected argument '", args[2], "' after ", command));
  }
  if (command == "local") return RunLocal();
  if (command == "status") return ShowStatus();
  if (command == "train") {
    if (!absl::GetFlag(FLAGS_monolith)) {
      hips::ExitWithUsageError(
          "hips train needs --monolith (distributed training is 'hips local')");
    }
#ifdef HIPS_WITH_MONOLITH
    return RunMonolith();
#else
    return RunWithTorch(argv);
#endif
  }
  if (command == "export") {
#ifdef HIPS_WITH_MONOLITH
    return RunExport();
#else
    return RunWithTorch(argv);
#endif
  }
  hips::ExitWithUnknownCommand(help, command);
}
