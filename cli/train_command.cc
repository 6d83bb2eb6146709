// hips train --monolith and hips export: in hips-train, which links LibTorch.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cli/cli_flags.h"
#include "cli/commands.h"
#include "cli/monolith.h"
#include "services/models/checkpoint_codec.h"
#include "services/numeric/scaffold.h"
#include "services/runtime/hq_flags.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/training_flags.h"
#include "services/runtime/worker_flags.h"

namespace hips {
namespace {

// Steps of the global batch: --max_versions, or --epochs rounded up.
int64_t VersionBudget() {
  if (absl::GetFlag(FLAGS_max_versions) > 0) return absl::GetFlag(FLAGS_max_versions);
  const int64_t global_batch = GlobalBatchFromFlags();
  return (SampleBudgetFromFlags() + global_batch - 1) / global_batch;
}
}  // namespace

int RunExportCommand() {
  const std::string model_file = absl::GetFlag(FLAGS_model_file);
  const std::string out = absl::GetFlag(FLAGS_out);
  if (absl::GetFlag(FLAGS_checkpoint).empty() || model_file.empty() || out.empty()) {
    ExitWithUsageError("hips export needs --checkpoint, --model_file and --out");
  }
  absl::StatusOr<std::string> path = CheckpointFile(absl::GetFlag(FLAGS_checkpoint));
  if (!path.ok()) ExitWithUsageError(std::string(path.status().message()));
  std::ifstream in(*path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.is_open() || in.bad()) {
    ExitWithUsageError(absl::StrCat("--checkpoint ", *path, ": cannot read it"));
  }
  absl::StatusOr<Checkpoint> checkpoint = DecodeCheckpoint(bytes);
  if (!checkpoint.ok()) {
    ExitWithUsageError(absl::StrCat("--checkpoint ", *path, ": ", checkpoint.status().message()));
  }
  // (A SCAFFOLD run's checkpoint holds the server's control variates after
  // the model's floats: not part of the module.)
  const ModelLayout model = WithoutControlVariates(checkpoint->layout);
  checkpoint->weights.resize(
      std::min(checkpoint->weights.size(), static_cast<size_t>(model.num_floats())));
  const absl::Status s = ExportTorchScript(model, checkpoint->weights, model_file, out);
  if (absl::IsInvalidArgument(s)) ExitWithUsageError(std::string(s.message()));
  if (!s.ok()) {
    std::fprintf(stderr, "hips export: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  std::printf("hips export: %s (version %lld) -> %s\n", path->c_str(),
              static_cast<long long>(checkpoint->version), out.c_str());
  return 0;
}

int RunTrainCommand() {
  const absl::Time start = absl::Now();
  SetTorchThreads(absl::GetFlag(FLAGS_torch_threads));
  MonolithOptions options;
  options.model = ModelOptionsFromFlags();
  options.optimizer = OptimizerOptionsFromFlags();
  options.seed = absl::GetFlag(FLAGS_seed);
  options.num_workers = absl::GetFlag(FLAGS_workers);
  options.batch_size = absl::GetFlag(FLAGS_batch_size);
  options.steps = VersionBudget();
  absl::StatusOr<Partition> partition = PartitionFromFlags();
  if (!partition.ok()) ExitWithUsageError(std::string(partition.status().message()));
  options.partition = *partition;
  const DataOptions data = DataOptionsFromFlagsOrExit();
  absl::StatusOr<Dataset> train = LoadData(data, Split::kTrain);
  absl::StatusOr<Dataset> test = LoadData(data, Split::kTest);
  if (!train.ok() || !test.ok()) {
    std::fprintf(stderr, "hips train: %s\n",
                 (train.ok() ? test.status() : train.status()).ToString().c_str());
    return 1;
  }
  std::printf("hips train --monolith: model %s, %lld steps of %lld examples\n",
              options.model.name.c_str(), static_cast<long long>(options.steps),
              static_cast<long long>(options.num_workers * options.batch_size));
  std::fflush(stdout);
  absl::StatusOr<MonolithResult> result = RunMonolith(options, *train, &*test);
  if (!result.ok()) {
    if (absl::IsInvalidArgument(result.status())) {
      ExitWithUsageError(std::string(result.status().message()));
    }
    std::fprintf(stderr, "hips train: %s\n", result.status().ToString().c_str());
    return 1;
  }
  RunSummary summary;
  summary.version = result->version;
  summary.SetMetrics(result->metrics);
  summary.samples = result->samples;
  summary.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return FinishRun(summary);
}
}  // namespace hips
