// hips: the operator CLI.
//   hips local [flags]            a whole cluster as local processes on 127.0.0.1
//   hips train --monolith [flags] the single-process reference run

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "glog/logging.h"
#include "services/cli/local_cluster.h"
#include "services/cli/run_summary.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/training_flags.h"
#include "services/training/monolith.h"

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

namespace {

constexpr char kUsage[] =
    "hips local [--workers=4 --aggregators=2 --epochs=5 ...]\n"
    "hips train --monolith [--workers=4 --epochs=5 ...]\n"
    "Run 'hips --help' for every flag.";

std::string OwnDirectory() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string path(buf, n);
  return path.substr(0, path.rfind('/'));
}

int64_t VersionBudget() {
  if (absl::GetFlag(FLAGS_max_versions) > 0) return absl::GetFlag(FLAGS_max_versions);
  const double epochs = absl::GetFlag(FLAGS_epochs);
  if (!(epochs > 0)) hips::ExitWithUsageError("--epochs must be positive");
  absl::StatusOr<int64_t> examples = hips::CountTrainingExamples(hips::DataOptionsFromFlags());
  if (!examples.ok()) hips::ExitWithUsageError(std::string(examples.status().message()));
  const int64_t global_batch = absl::GetFlag(FLAGS_workers) * absl::GetFlag(FLAGS_batch_size);
  if (global_batch <= 0) hips::ExitWithUsageError("--workers and --batch_size must be positive");
  return std::max<int64_t>(1, std::llround(epochs * (*examples) / global_batch));
}

int Finish(const hips::RunSummary& summary) {
  const std::string json = absl::GetFlag(FLAGS_summary_json);
  if (!json.empty()) {
    if (absl::Status s = hips::WriteSummaryJson(json, summary); !s.ok()) {
      std::fprintf(stderr, "hips: %s\n", std::string(s.message()).c_str());
      return 1;
    }
  }
  std::printf("%s\n", hips::FinalLine(summary).c_str());
  std::fflush(stdout);
  return 0;
}

int RunLocal() {
  std::atomic<bool> interrupted{false};
  hips::TerminationWatcher watcher([&interrupted](int) { interrupted.store(true); });

  hips::LocalClusterOptions options;
  options.aggregators = absl::GetFlag(FLAGS_aggregators);
  options.workers = absl::GetFlag(FLAGS_workers);
  if (options.aggregators < 1 || options.workers < options.aggregators) {
    hips::ExitWithUsageError("need --aggregators >= 1 and --workers >= --aggregators");
  }
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.max_versions = VersionBudget();
  options.eval_every = absl::GetFlag(FLAGS_eval_every);
  options.bin_dir = absl::GetFlag(FLAGS_bin_dir).empty() ? OwnDirectory()
                                                         : absl::GetFlag(FLAGS_bin_dir);
  options.run_dir = absl::GetFlag(FLAGS_run_dir);
  if (options.run_dir.empty()) {
    char tmpl[] = "/tmp/hips-local-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) {
      std::fprintf(stderr, "hips: cannot create a run directory: %s\n", std::strerror(errno));
      return 1;
    }
    options.run_dir = tmpl;
  }
  options.training_args = hips::TrainingFlagsAsArgs();
  if (!(absl::GetFlag(FLAGS_progress_seconds) > 0)) {
    hips::ExitWithUsageError("--progress_seconds must be positive");
  }
  options.progress_every = absl::Seconds(absl::GetFlag(FLAGS_progress_seconds));
  std::printf("hips local: %d workers, %d aggregators, model %s, %lld versions of %lld x %lld "
              "examples\n",
              options.workers, options.aggregators, absl::GetFlag(FLAGS_model).c_str(),
              static_cast<long long>(options.max_versions),
              static_cast<long long>(options.workers),
              static_cast<long long>(options.batch_size));
  std::fflush(stdout);

  absl::StatusOr<hips::RunSummary> summary = hips::RunLocalCluster(options, &interrupted);
  if (!summary.ok()) {
    std::fprintf(stderr, "hips local: %s\n", std::string(summary.status().message()).c_str());
    return absl::IsCancelled(summary.status()) ? 130 : 1;
  }
  return Finish(*summary);
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
  const hips::DataOptions data = hips::DataOptionsFromFlags();
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
  summary.accuracy = result->metrics.accuracy;
  summary.f1 = result->metrics.macro_f1;
  summary.samples = result->samples;
  summary.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return Finish(summary);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args = hips::InitProcess(argc, argv, kUsage);
  if (args.size() != 2) hips::ExitWithUsageError(absl::StrCat("usage:\n", kUsage));
  const std::string command = args[1];
  if (command == "local") return RunLocal();
  if (command == "train") {
    if (!absl::GetFlag(FLAGS_monolith)) {
      hips::ExitWithUsageError("hips train needs --monolith (distributed training is 'hips local')");
    }
    return RunMonolith();
  }
  hips::ExitWithUsageError(absl::StrCat("unknown command '", command, "'\nusage:\n", kUsage));
}
