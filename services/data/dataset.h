#ifndef HIPS_SERVICES_DATA_DATASET_H_
#define HIPS_SERVICES_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace hips {

// The examples of a whole set one process holds: shard `index` of `count`,
// the examples i with i % count == index (a worker's, as ShardSampler draws
// them), or, when `examples` is not empty, exactly those (ascending and
// distinct: a home's part under --partition, partition.h).
struct DataShard {
  DataShard() = default;
  DataShard(int index, int count, std::vector<int64_t> examples = {})
      : index(index), count(count), examples(std::move(examples)) {}

  int index = 0;
  int count = 1;
  std::vector<int64_t> examples;

  bool explicit_list() const { return !examples.empty(); }
  bool whole() const { return !explicit_list() && count <= 1; }
  // Whether example i of the whole set is in the shard.
  bool Holds(int64_t i) const;
  // Where example i (held) is stored among the shard's.
  int64_t Position(int64_t i) const;
  // INVALID_ARGUMENT unless a shard of a set of `whole` examples: index in
  // [0, count), or examples ascending, distinct and below `whole`.
  absl::Status Check(int64_t whole) const;
};

// A data set in memory: float features, row-major, one example after
// another, and per example an integer class label (classification) or
// `target_size` float targets (regression, --loss=mse). Immutable once
// loaded; safe to read from many threads.
struct Dataset {
  // Shape of one example, e.g. {1, 28, 28} for Fashion-MNIST.
  std::vector<int64_t> example_shape;
  // Classes (labels 0..num_classes-1); for a regression, target_size.
  int64_t num_classes = 0;
  std::vector<float> features;
  std::vector<int64_t> labels;  // classification
  std::vector<float> targets;   // regression: target_size per example
  int64_t target_size = 0;      // 0: a classification
  // A worker's shard of a larger set (LoadData with a DataShard): example i
  // of the whole set is stored at shard.Position(i); `whole_examples`
  // counts the whole set.
  DataShard shard;
  int64_t whole_examples = 0;

  bool regression() const { return target_size > 0; }
  // The examples held here.
  int64_t num_examples() const {
    return static_cast<int64_t>(regression() ? targets.size() / target_size : labels.size());
  }
  // The examples of the whole set (the indices Gather takes).
  int64_t num_whole_examples() const { return shard.whole() ? num_examples() : whole_examples; }
  int64_t example_size() const;

  // Copies the examples at `indices` (of the whole set; for a shard, each in
  // the shard) into `features` (resized) and `labels`, and for a regression
  // their targets into `targets` (if not null).
  void Gather(absl::Span<const int64_t> indices, std::vector<float>* features,
              std::vector<int64_t>* labels, std::vector<float>* targets = nullptr) const;

  // Drops every example outside `shard` (of the whole set held) and frees
  // their memory; INVALID_ARGUMENT (nothing dropped) for a shard that is
  // not one of this set.
  absl::Status KeepShard(DataShard shard);
};

enum class Split { kTrain, kTest };

// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Reads a pair of (optionally gzipped) IDX files: uint8 images of rank 3 and
// uint8 labels of rank 1. Pixels become (p/255 - mean) / std. Errors name the
// file and what is wrong with it (NOT_FOUND, DATA_LOSS, INVALID_ARGUMENT).
// With a shard, only its examples are converted and kept.
absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, float mean, float stddev,
                                       DataShard shard = {});

// Fashion-MNIST's train (60000) or test (10000) split from `dir`: each file
// unpacked (e.g. train-images-idx3-ubyte) if it is there, else gzipped
// (train-images-idx3-ubyte.gz, as Debian ships them).
absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, Split split, DataShard shard = {});

// Writes unpacked copies of Fashion-MNIST's four files from `dir` into
// `into` (created if need be; each file written whole, then renamed into
// place) and returns `into`. A process that loads the set then reads it
// without inflating 26 MB of gzip (~0.3 s of CPU per process): hips local
// does this once for all its workers.
absl::StatusOr<std::string> UnpackFashionMnist(const std::string& dir, const std::string& into);

// A learnable synthetic task: features drawn from N(0, 1) with `sample_seed`,
// labels from the argmax of a random linear map drawn with `task_seed` (so a
// train and a test split share the task but not the examples). The same
// arguments give the same data on every host.
Dataset MakeSyntheticDataset(int64_t num_examples, std::vector<int64_t> example_shape,
                             int64_t num_classes, uint64_t task_seed, uint64_t sample_seed);

// Reads a file written by numpy.savez (or savez_compressed) holding `x`,
// float32 [N, ...] (one example per row), and `y`: int64 [N] class labels
// 0..C-1 (C is the largest label + 1), or float32 [N, ...] regression
// targets. With a shard, only that shard's rows
// are ever held in memory. `flag` names the file in errors ("--train_data"):
// NOT_FOUND for a missing file, INVALID_ARGUMENT, one line naming the file
// and what is wrong, for anything else.
absl::StatusOr<Dataset> LoadNpzDataset(const std::string& path, const std::string& flag,
                                       DataShard shard = {});

// What LoadNpzDataset would load, from the headers and labels only: the
// examples, their shape and the classes; the same errors.
struct NpzSummary {
  int64_t examples = 0;
  std::vector<int64_t> example_shape;
  int64_t num_classes = 0;  // a regression: its target size
  bool regression = false;  // y holds float32 targets
};
absl::StatusOr<NpzSummary> InspectNpzDataset(const std::string& path, const std::string& flag);

// Which data a process trains or evaluates on. Validated by LoadData.
struct DataOptions {
  std::string name = "fashion-mnist";  // or "synthetic", or "npz"
  std::string dir = kDefaultFashionMnistDir;
  // --data=npz: the files of the training and the test split.
  std::string train_path;
  std::string test_path;
  // The loss the data is for: "cross_entropy" (y holds class labels) or
  // "mse" (y holds float32 targets; npz only).
  std::string loss = "cross_entropy";
  int64_t synthetic_train_examples = 8192;
  int64_t synthetic_test_examples = 2048;
  std::vector<int64_t> synthetic_shape = {1, 28, 28};
  int64_t synthetic_classes = 10;
  uint64_t synthetic_seed = 7;
};

// The whole split, or only `shard`'s examples of it.
absl::StatusOr<Dataset> LoadData(const DataOptions& options, Split split, DataShard shard = {});

// INVALID_ARGUMENT (NOT_FOUND for a missing npz file) for options LoadData
// would refuse, found without loading the data: an unknown name, an npz
// file that is missing, damaged, of another dtype or whose splits disagree.
// Without `inspect_files` the npz files are not opened, only required.
absl::Status CheckDataOptions(const DataOptions& options, bool inspect_files = true);

// Number of training examples LoadData(options, kTrain) would load, without
// loading them.
absl::StatusOr<int64_t> CountTrainingExamples(const DataOptions& options);

// The class label of every training example, without loading the examples
// (what --partition splits by); INVALID_ARGUMENT for regression targets.
absl::StatusOr<std::vector<int64_t>> LoadTrainingLabels(const DataOptions& options);

}  // namespace hips

#endif  // HIPS_SERVICES_DATA_DATASET_H_
