// Prints how --partition splits the training labels over --homes homes: per
// home, its examples and a bar of its classes (one letter per class, each
// letter's share of the bar its share of the home's examples), as the
// histograms of docs/noniid.md were made:
//
//   build/bench/hips-partition-histogram --homes=10 --partition=dirichlet
//       --dirichlet_alpha=0.1 [--seed=1] [--data=fashion-mnist ...]

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "services/data/dataset.h"
#include "services/data/partition.h"
#include "services/runtime/training_flags.h"
#include "services/runtime/worker_flags.h"

ABSL_FLAG(int, homes, 10, "Homes to split the training examples among.");
ABSL_FLAG(int, width, 50, "Characters per bar.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  const absl::StatusOr<hips::Partition> partition = hips::PartitionFromFlags();
  if (!partition.ok()) {
    std::fprintf(stderr, "%s\n", std::string(partition.status().message()).c_str());
    return 2;
  }
  const absl::StatusOr<std::vector<int64_t>> labels =
      hips::LoadTrainingLabels(hips::DataOptionsFromFlags());
  if (!labels.ok()) {
    std::fprintf(stderr, "%s\n", std::string(labels.status().message()).c_str());
    return 1;
  }
  const int homes = absl::GetFlag(FLAGS_homes);
  const absl::StatusOr<std::vector<std::vector<int64_t>>> parts = hips::PartitionExamples(
      *labels, homes, *partition, absl::GetFlag(FLAGS_seed), absl::GetFlag(FLAGS_batch_size));
  if (!parts.ok()) {
    std::fprintf(stderr, "%s\n", std::string(parts.status().message()).c_str());
    return 1;
  }
  int64_t classes = 0;
  for (int64_t label : *labels) classes = std::max(classes, label + 1);
  std::printf("%s over %d homes (--seed=%llu), classes as letters a, b, c, ...\n\n",
              hips::DescribePartition(*partition).c_str(), homes,
              static_cast<unsigned long long>(absl::GetFlag(FLAGS_seed)));
  const int width = absl::GetFlag(FLAGS_width);
  for (int h = 0; h < homes; ++h) {
    const std::vector<int64_t>& home = (*parts)[h];
    std::vector<int64_t> counts(classes, 0);
    for (int64_t i : home) ++counts[(*labels)[i]];
    // Each class's letters: its share of the bar, rounded so the bar is full.
    std::string bar;
    int64_t seen = 0;
    for (int64_t c = 0; c < classes; ++c) {
      const size_t before = home.empty() ? 0 : static_cast<size_t>(seen * width / home.size());
      seen += counts[c];
      const size_t after = home.empty() ? 0 : static_cast<size_t>(seen * width / home.size());
      bar.append(after - before, static_cast<char>('a' + c % 26));
    }
    std::printf("home %3d %6zu |%-*s|\n", h, home.size(), width, bar.c_str());
  }
  std::printf("\n%s\n", hips::DescribeLabelSpread(*labels, *parts).c_str());
  return 0;
}
