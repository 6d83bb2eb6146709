#include "services/data/dataset.h"

#include <zlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace hips {
namespace {

// Reads a whole file through zlib, which also passes plain files through.
absl::StatusOr<std::string> ReadMaybeGzipped(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return absl::NotFoundError(absl::StrCat("cannot open ", path));
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, n);
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  gzclose(f);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) {
    return absl::DataLossError(absl::StrCat("cannot read ", path, ": ", msg));
  }
  return out;
}

constexpr const char* kFashionMnistFiles[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

// `dir`/`name` if that file exists (unpacked), else `dir`/`name`.gz.
std::string FashionMnistFile(const std::string& dir, const std::string& name) {
  std::string unpacked = absl::StrCat(dir, "/", name);
  std::error_code error;
  if (std::filesystem::is_regular_file(unpacked, error)) return unpacked;
  return absl::StrCat(unpacked, ".gz");
}

uint32_t BigEndian32(const std::string& s, size_t at) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data() + at);
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}

// Parses an IDX header of unsigned bytes with `rank` dimensions.
absl::StatusOr<std::vector<int64_t>> IdxDims(const std::string& data, int rank,
                                             const std::string& path) {
  const size_t header = 4 + 4 * static_cast<size_t>(rank);
  if (data.size() < header) return absl::DataLossError(absl::StrCat(path, " is truncated"));
  const uint32_t magic = BigEndian32(data, 0);
  if (magic != (0x0800u | static_cast<uint32_t>(rank))) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not an IDX file of unsigned bytes with rank ", rank));
  }
  std::vector<int64_t> dims;
  int64_t total = 1;
  for (int i = 0; i < rank; ++i) {
    dims.push_back(BigEndian32(data, 4 + 4 * i));
    total *= dims.back();
  }
  if (data.size() != header + static_cast<size_t>(total)) {
    return absl::DataLossError(absl::StrCat(path, " holds ", data.size() - header,
                                            " bytes of data, its header announces ", total));
  }
  return dims;
}

}  // namespace

int64_t Dataset::example_size() const {
  int64_t n = 1;
  for (int64_t d : example_shape) n *= d;
  return n;
}

void Dataset::Gather(absl::Span<const int64_t> indices, std::vector<float>* out_features,
                     std::vector<int64_t>* out_labels) const {
  const int64_t size = example_size();
  out_features->resize(indices.size() * size);
  out_labels->resize(indices.size());
  for (size_t i = 0; i < indices.size(); ++i) {
    std::memcpy(out_features->data() + i * size, features.data() + indices[i] * size,
                size * sizeof(float));
    (*out_labels)[i] = labels[indices[i]];
  }
}

absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, float mean, float stddev) {
  absl::StatusOr<std::string> images = ReadMaybeGzipped(images_path);
  if (!images.ok()) return images.status();
  absl::StatusOr<std::string> labels = ReadMaybeGzipped(labels_path);
  if (!labels.ok()) return labels.status();
  absl::StatusOr<std::vector<int64_t>> image_dims = IdxDims(*images, 3, images_path);
  if (!image_dims.ok()) return image_dims.status();
  absl::StatusOr<std::vector<int64_t>> label_dims = IdxDims(*labels, 1, labels_path);
  if (!label_dims.ok()) return label_dims.status();
  if ((*image_dims)[0] != (*label_dims)[0]) {
    return absl::InvalidArgumentError(absl::StrCat(images_path, " has ", (*image_dims)[0],
                                                   " images but ", labels_path, " has ",
                                                   (*label_dims)[0], " labels"));
  }

  Dataset ds;
  ds.example_shape = {1, (*image_dims)[1], (*image_dims)[2]};
  ds.num_classes = 10;
  const size_t header = 16;
  const size_t n = images->size() - header;
  ds.features.resize(n);
  const auto* pixels = reinterpret_cast<const unsigned char*>(images->data() + header);
  const float scale = 1.0f / (255.0f * stddev);
  const float shift = mean / stddev;
  for (size_t i = 0; i < n; ++i) ds.features[i] = pixels[i] * scale - shift;
  ds.labels.resize((*label_dims)[0]);
  for (size_t i = 0; i < ds.labels.size(); ++i) {
    const unsigned char label = static_cast<unsigned char>((*labels)[8 + i]);
    if (label >= ds.num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat(labels_path, ": label ", int{label}, " at ", i, " is out of range"));
    }
    ds.labels[i] = label;
  }
  return ds;
}

absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, Split split) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  // Mean and standard deviation of Fashion-MNIST's training pixels in [0, 1].
  return LoadIdxDataset(FashionMnistFile(dir, absl::StrCat(prefix, "-images-idx3-ubyte")),
                        FashionMnistFile(dir, absl::StrCat(prefix, "-labels-idx1-ubyte")), 0.2860f,
                        0.3530f);
}

absl::StatusOr<std::string> UnpackFashionMnist(const std::string& dir, const std::string& into) {
  std::error_code error;
  std::filesystem::create_directories(into, error);
  if (error) {
    return absl::UnavailableError(absl::StrCat("cannot create ", into, ": ", error.message()));
  }
  for (const char* name : kFashionMnistFiles) {
    const std::string source = FashionMnistFile(dir, name);
    absl::StatusOr<std::string> bytes = ReadMaybeGzipped(source);
    if (!bytes.ok()) return bytes.status();
    const std::string target = absl::StrCat(into, "/", name);
    const std::string tmp = absl::StrCat(target, ".tmp");
    {
      std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
      out.write(bytes->data(), static_cast<std::streamsize>(bytes->size()));
      if (!out.flush()) {
        std::filesystem::remove(tmp, error);
        return absl::UnavailableError(absl::StrCat("cannot write ", tmp));
      }
    }
    std::filesystem::rename(tmp, target, error);
    if (error) {
      return absl::UnavailableError(absl::StrCat("cannot rename ", tmp, ": ", error.message()));
    }
  }
  return into;
}

Dataset MakeSyntheticDataset(int64_t num_examples, std::vector<int64_t> example_shape,
                             int64_t num_classes, uint64_t task_seed, uint64_t sample_seed) {
  Dataset ds;
  ds.example_shape = std::move(example_shape);
  ds.num_classes = num_classes;
  const int64_t size = ds.example_size();
  std::mt19937_64 task_rng(task_seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> teacher(size * num_classes);
  for (float& w : teacher) w = normal(task_rng);
  std::mt19937_64 rng(sample_seed ^ 0x5DEECE66Dull);
  ds.features.resize(num_examples * size);
  for (float& x : ds.features) x = normal(rng);
  ds.labels.resize(num_examples);
  for (int64_t i = 0; i < num_examples; ++i) {
    const float* x = ds.features.data() + i * size;
    int64_t best = 0;
    float best_score = 0.0f;
    for (int64_t c = 0; c < num_classes; ++c) {
      float score = 0.0f;
      for (int64_t j = 0; j < size; ++j) score += teacher[c * size + j] * x[j];
      if (c == 0 || score > best_score) {
        best = c;
        best_score = score;
      }
    }
    ds.labels[i] = best;
  }
  return ds;
}

absl::StatusOr<Dataset> LoadData(const DataOptions& o, Split split) {
  if (o.name == "fashion-mnist") return LoadFashionMnist(o.dir, split);
  if (o.name != "synthetic") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown data set '", o.name, "' (expected fashion-mnist or synthetic)"));
  }
  const int64_t n = split == Split::kTrain ? o.synthetic_train_examples : o.synthetic_test_examples;
  if (n <= 0 || o.synthetic_classes < 2 || o.synthetic_shape.empty()) {
    return absl::InvalidArgumentError("synthetic data needs examples, a shape and 2+ classes");
  }
  for (int64_t d : o.synthetic_shape) {
    if (d <= 0) return absl::InvalidArgumentError("synthetic shape must be positive");
  }
  return MakeSyntheticDataset(n, o.synthetic_shape, o.synthetic_classes, o.synthetic_seed,
                              o.synthetic_seed * 2 + (split == Split::kTrain ? 0 : 1));
}

absl::StatusOr<int64_t> CountTrainingExamples(const DataOptions& o) {
  if (o.name == "synthetic") return o.synthetic_train_examples;
  if (o.name != "fashion-mnist") {
    return absl::InvalidArgumentError(absl::StrCat("unknown data set '", o.name, "'"));
  }
  const std::string path = FashionMnistFile(o.dir, "train-labels-idx1-ubyte");
  absl::StatusOr<std::string> labels = ReadMaybeGzipped(path);
  if (!labels.ok()) return labels.status();
  absl::StatusOr<std::vector<int64_t>> dims = IdxDims(*labels, 1, path);
  if (!dims.ok()) return dims.status();
  return (*dims)[0];
}

}  // namespace hips
