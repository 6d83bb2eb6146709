#ifndef HIPS_SERVICES_DATA_DATASET_H_
#define HIPS_SERVICES_DATA_DATASET_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace hips {

// A classification data set in memory: normalized float features, row-major,
// one example after another, and an integer label per example. Immutable once
// loaded; safe to read from many threads.
struct Dataset {
  // Shape of one example, e.g. {1, 28, 28} for Fashion-MNIST.
  std::vector<int64_t> example_shape;
  int64_t num_classes = 0;
  std::vector<float> features;
  std::vector<int64_t> labels;

  int64_t num_examples() const { return static_cast<int64_t>(labels.size()); }
  int64_t example_size() const;

  // Copies the examples at `indices` into `features` (resized) and `labels`.
  void Gather(absl::Span<const int64_t> indices, std::vector<float>* features,
              std::vector<int64_t>* labels) const;
};

enum class Split { kTrain, kTest };

// Where Debian's dataset-fashion-mnist package puts the files.
inline constexpr char kDefaultFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";

// Reads a pair of (optionally gzipped) IDX files: uint8 images of rank 3 and
// uint8 labels of rank 1. Pixels become (p/255 - mean) / std. Errors name the
// file and what is wrong with it (NOT_FOUND, DATA_LOSS, INVALID_ARGUMENT).
absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, float mean, float stddev);

// Fashion-MNIST's train (60000) or test (10000) split from `dir`: each file
// unpacked (e.g. train-images-idx3-ubyte) if it is there, else gzipped
// (train-images-idx3-ubyte.gz, as Debian ships them).
absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, Split split);

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

// Which data a process trains or evaluates on. Validated by LoadData.
struct DataOptions {
  std::string name = "fashion-mnist";  // or "synthetic"
  std::string dir = kDefaultFashionMnistDir;
  int64_t synthetic_train_examples = 8192;
  int64_t synthetic_test_examples = 2048;
  std::vector<int64_t> synthetic_shape = {1, 28, 28};
  int64_t synthetic_classes = 10;
  uint64_t synthetic_seed = 7;
};

absl::StatusOr<Dataset> LoadData(const DataOptions& options, Split split);

// Number of training examples LoadData(options, kTrain) would load, without
// loading them.
absl::StatusOr<int64_t> CountTrainingExamples(const DataOptions& options);

}  // namespace hips

#endif  // HIPS_SERVICES_DATA_DATASET_H_
