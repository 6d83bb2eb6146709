#include "services/data/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/data/npz.h"

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

// The whole set's index of the shard's example stored at `position`.
int64_t WholeIndex(const DataShard& shard, int64_t position) {
  if (shard.explicit_list()) return shard.examples[position];
  return position * shard.count + shard.index;
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

bool DataShard::Holds(int64_t i) const {
  if (explicit_list()) return std::binary_search(examples.begin(), examples.end(), i);
  return i % count == index;
}

int64_t DataShard::Position(int64_t i) const {
  if (explicit_list()) return std::lower_bound(examples.begin(), examples.end(), i) - examples.begin();
  return i / count;
}

absl::Status DataShard::Check(int64_t whole) const {
  if (!explicit_list()) {
    if (count < 1 || index < 0 || index >= count) {
      return absl::InvalidArgumentError(absl::StrCat("shard ", index, " of ", count, " does not exist"));
    }
    return absl::OkStatus();
  }
  for (size_t k = 0; k < examples.size(); ++k) {
    if (examples[k] < 0 || examples[k] >= whole || (k > 0 && examples[k] <= examples[k - 1])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "a shard's examples must be ascending, distinct and below ", whole, ": example ", k,
          " is ", examples[k]));
    }
  }
  return absl::OkStatus();
}

void Dataset::Gather(absl::Span<const int64_t> indices, std::vector<float>* out_features,
                     std::vector<int64_t>* out_labels, std::vector<float>* out_targets) const {
  const int64_t size = example_size();
  out_features->resize(indices.size() * size);
  out_labels->resize(regression() ? 0 : indices.size());
  if (out_targets != nullptr) out_targets->resize(indices.size() * target_size);
  for (size_t i = 0; i < indices.size(); ++i) {
    const int64_t at = shard.Position(indices[i]);
    std::memcpy(out_features->data() + i * size, features.data() + at * size, size * sizeof(float));
    if (!regression()) {
      (*out_labels)[i] = labels[at];
    } else if (out_targets != nullptr) {
      std::memcpy(out_targets->data() + i * target_size, targets.data() + at * target_size,
                  target_size * sizeof(float));
    }
  }
}

absl::Status Dataset::KeepShard(DataShard keep) {
  if (keep.whole()) return absl::OkStatus();
  const int64_t whole = num_examples(), size = example_size();
  if (absl::Status s = keep.Check(whole); !s.ok()) return s;
  int64_t kept = 0;
  for (int64_t i = 0; i < whole; ++i) {
    if (!keep.Holds(i)) continue;
    std::memmove(features.data() + kept * size, features.data() + i * size, size * sizeof(float));
    if (regression()) {
      std::memmove(targets.data() + kept * target_size, targets.data() + i * target_size,
                   target_size * sizeof(float));
    } else {
      labels[kept] = labels[i];
    }
    ++kept;
  }
  features.resize(kept * size);
  features.shrink_to_fit();
  if (regression()) {
    targets.resize(kept * target_size);
  } else {
    labels.resize(kept);
  }
  labels.shrink_to_fit();
  targets.shrink_to_fit();
  shard = std::move(keep);
  whole_examples = whole;
  return absl::OkStatus();
}

absl::StatusOr<Dataset> LoadIdxDataset(const std::string& images_path,
                                       const std::string& labels_path, float mean, float stddev,
                                       DataShard shard) {
  // (A list of examples is checked once the set's size is known.)
  if (absl::Status s = shard.explicit_list() ? absl::OkStatus() : shard.Check(0); !s.ok()) {
    return s;
  }
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
  const int64_t whole = (*label_dims)[0];
  const int64_t size = ds.example_size();
  const auto* pixels = reinterpret_cast<const unsigned char*>(images->data() + 16);
  const float scale = 1.0f / (255.0f * stddev);
  const float shift = mean / stddev;
  if (absl::Status s = shard.Check(whole); !s.ok()) return s;
  const int64_t kept = shard.explicit_list()
                           ? static_cast<int64_t>(shard.examples.size())
                           : (whole - shard.index + shard.count - 1) / shard.count;
  ds.features.reserve(kept * size);
  ds.labels.reserve(kept);
  for (int64_t i = 0; i < whole; ++i) {
    const unsigned char label = static_cast<unsigned char>((*labels)[8 + i]);
    if (label >= ds.num_classes) {
      return absl::InvalidArgumentError(
          absl::StrCat(labels_path, ": label ", int{label}, " at ", i, " is out of range"));
    }
    if (!shard.Holds(i)) continue;
    ds.labels.push_back(label);
    const unsigned char* example = pixels + i * size;
    for (int64_t k = 0; k < size; ++k) ds.features.push_back(example[k] * scale - shift);
  }
  if (!shard.whole()) {
    ds.shard = std::move(shard);
    ds.whole_examples = whole;
  }
  return ds;
}

absl::StatusOr<Dataset> LoadFashionMnist(const std::string& dir, Split split, DataShard shard) {
  const std::string prefix = split == Split::kTrain ? "train" : "t10k";
  // Mean and standard deviation of Fashion-MNIST's training pixels in [0, 1].
  return LoadIdxDataset(FashionMnistFile(dir, absl::StrCat(prefix, "-images-idx3-ubyte")),
                        FashionMnistFile(dir, absl::StrCat(prefix, "-labels-idx1-ubyte")), 0.2860f,
                        0.3530f, shard);
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

// Fashion-MNIST or the synthetic set, whole (defined below).
absl::StatusOr<Dataset> LoadWholeData(const DataOptions& o, Split split);

namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The file, its x and y headers, checked against each other.
struct NpzArrays {
  NpzFile file;
  NpyHeader x, y;
};

absl::StatusOr<NpzArrays> OpenNpzArrays(const std::string& path, const std::string& flag) {
  const auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(flag, "=", path, ": ", what));
  };
  if (path.empty()) return bad("no file given");
  absl::StatusOr<NpzFile> file = NpzFile::Open(path);
  if (!file.ok()) {
    return absl::Status(file.status().code(), absl::StrCat(flag, "=", file.status().message()));
  }
  absl::StatusOr<NpyHeader> x = file->Header("x");
  absl::StatusOr<NpyHeader> y = x.ok() ? file->Header("y") : x.status();
  if (!y.ok()) {
    if (absl::IsNotFound(y.status())) {
      return bad(absl::StrCat("needs arrays 'x' and 'y', the file has '",
                              absl::StrJoin(file->names(), "', '"), "'"));
    }
    return absl::InvalidArgumentError(absl::StrCat(flag, "=", y.status().message()));
  }
  if (x->dtype != "<f4") {
    return bad(absl::StrCat("x is '", x->dtype, "', hips needs float32 ('<f4') examples"));
  }
  if (y->dtype != "<i8" && y->dtype != "<f4") {
    return bad(absl::StrCat("y is '", y->dtype,
                            "', hips needs int64 ('<i8') class labels or float32 ('<f4') targets"));
  }
  if (x->shape.size() < 2) {
    return bad(absl::StrCat("x has shape ", ShapeText(x->shape), ", hips needs [N, ...]"));
  }
  if (y->dtype == "<i8" && y->shape.size() != 1) {
    return bad(absl::StrCat("y has shape ", ShapeText(y->shape), ", class labels are [N]"));
  }
  if (y->shape.empty() || y->row_bytes() == 0) {
    return bad(absl::StrCat("y has shape ", ShapeText(y->shape), ", hips needs [N, ...]"));
  }
  if (x->rows() != y->rows()) {
    return bad(absl::StrCat("x has ", x->rows(), " examples, y has ", y->rows()));
  }
  if (x->rows() == 0 || x->row_bytes() == 0) return bad("x holds no examples");
  return NpzArrays{*std::move(file), *std::move(x), *std::move(y)};
}

// Reads y's labels, all of them or those of `shard`, each checked; the
// number of classes (the largest label + 1) into `*classes`.
absl::Status ReadLabels(const NpzArrays& a, const std::string& path, const std::string& flag,
                        DataShard shard, std::vector<int64_t>* labels, int64_t* classes) {
  int64_t largest = -1, bad_row = -1, bad_label = 0;
  absl::Status read = a.file.ReadRows("y", [&](int64_t row, const char* bytes) {
    int64_t label;
    std::memcpy(&label, bytes, sizeof(label));
    if ((label < 0 || label >= (int64_t{1} << 24)) && bad_row < 0) {
      bad_row = row;
      bad_label = label;
    }
    largest = std::max(largest, label);
    if (labels != nullptr && shard.Holds(row)) labels->push_back(label);
  });
  if (!read.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, "=", read.message()));
  if (bad_row >= 0) {
    return absl::InvalidArgumentError(absl::StrCat(flag, "=", path, ": y[", bad_row, "] is ",
                                                   bad_label, "; class labels are 0, 1, ..."));
  }
  *classes = largest + 1;
  return absl::OkStatus();
}

// y's float32 targets, those of `shard`, each checked finite.
absl::Status ReadTargets(const NpzArrays& a, const std::string& path, const std::string& flag,
                         DataShard shard, std::vector<float>* targets) {
  const int64_t size = a.y.row_bytes() / static_cast<int64_t>(sizeof(float));
  int64_t bad_row = -1;
  absl::Status read = a.file.ReadRows("y", [&](int64_t row, const char* bytes) {
    if (!shard.Holds(row)) return;
    const size_t at = targets->size();
    targets->resize(at + size);
    std::memcpy(targets->data() + at, bytes, size * sizeof(float));
    for (int64_t i = 0; i < size; ++i) {
      if (!std::isfinite((*targets)[at + i]) && bad_row < 0) bad_row = row;
    }
  });
  if (!read.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, "=", read.message()));
  if (bad_row >= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, "=", path, ": y[", bad_row, "] is not finite"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<NpzSummary> InspectNpzDataset(const std::string& path, const std::string& flag) {
  absl::StatusOr<NpzArrays> a = OpenNpzArrays(path, flag);
  if (!a.ok()) return a.status();
  NpzSummary summary;
  summary.examples = a->x.rows();
  summary.example_shape.assign(a->x.shape.begin() + 1, a->x.shape.end());
  if (a->y.dtype == "<f4") {
    summary.regression = true;
    summary.num_classes = a->y.row_bytes() / static_cast<int64_t>(sizeof(float));
    return summary;
  }
  if (absl::Status s = ReadLabels(*a, path, flag, {}, nullptr, &summary.num_classes); !s.ok()) {
    return s;
  }
  return summary;
}

absl::StatusOr<Dataset> LoadNpzDataset(const std::string& path, const std::string& flag,
                                       DataShard shard) {
  // (A list of examples is checked once the set's size is known.)
  if (absl::Status s = shard.explicit_list() ? absl::OkStatus() : shard.Check(0); !s.ok()) {
    return s;
  }
  absl::StatusOr<NpzArrays> a = OpenNpzArrays(path, flag);
  if (!a.ok()) return a.status();
  if (absl::Status s = shard.Check(a->x.rows()); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, "=", path, ": ", s.message()));
  }
  Dataset d;
  d.example_shape.assign(a->x.shape.begin() + 1, a->x.shape.end());
  if (a->y.dtype == "<f4") {
    d.target_size = a->y.row_bytes() / static_cast<int64_t>(sizeof(float));
    d.num_classes = d.target_size;
    if (absl::Status s = ReadTargets(*a, path, flag, shard, &d.targets); !s.ok()) return s;
  } else if (absl::Status s = ReadLabels(*a, path, flag, shard, &d.labels, &d.num_classes);
             !s.ok()) {
    return s;
  }
  const int64_t size = d.example_size();
  d.features.resize(d.num_examples() * size);
  absl::Status read = a->file.ReadRows("x", [&](int64_t row, const char* bytes) {
    if (!shard.Holds(row)) return;
    std::memcpy(d.features.data() + shard.Position(row) * size, bytes, size * sizeof(float));
  });
  if (!read.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, "=", read.message()));
  for (size_t i = 0; i < d.features.size(); ++i) {
    if (!std::isfinite(d.features[i])) {
      return absl::InvalidArgumentError(
          absl::StrCat(flag, "=", path, ": x holds ", d.features[i], " in example ",
                       WholeIndex(shard, static_cast<int64_t>(i / size))));
    }
  }
  if (!shard.whole()) {
    d.whole_examples = a->x.rows();
    d.shard = std::move(shard);
  }
  return d;
}

absl::Status CheckDataOptions(const DataOptions& o, bool inspect_files) {
  if (o.loss != "cross_entropy" && o.loss != "mse") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown loss '", o.loss, "' (expected cross_entropy or mse)"));
  }
  if (o.name == "fashion-mnist" || o.name == "synthetic") {
    if (!o.train_path.empty() || !o.test_path.empty()) {
      return absl::InvalidArgumentError("--train_data and --test_data are for --data=npz");
    }
    if (o.loss == "mse") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--loss=mse needs regression targets: --data=npz with float32 y (--data=", o.name,
          " has class labels)"));
    }
    return absl::OkStatus();
  }
  if (o.name != "npz") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown data set '", o.name, "' (expected fashion-mnist, synthetic or npz)"));
  }
  if (!inspect_files) {
    for (const auto& [flag, path] :
         {std::pair{"--train_data", &o.train_path}, std::pair{"--test_data", &o.test_path}}) {
      if (path->empty()) return absl::InvalidArgumentError(absl::StrCat(flag, "=: no file given"));
    }
    return absl::OkStatus();
  }
  absl::StatusOr<NpzSummary> train = InspectNpzDataset(o.train_path, "--train_data");
  if (!train.ok()) return train.status();
  absl::StatusOr<NpzSummary> test = InspectNpzDataset(o.test_path, "--test_data");
  if (!test.ok()) return test.status();
  if (train->example_shape != test->example_shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("--train_data examples are ", ShapeText(train->example_shape),
                     ", --test_data examples ", ShapeText(test->example_shape)));
  }
  for (const auto& [flag, summary] :
       {std::pair{"--train_data", &*train}, {"--test_data", &*test}}) {
    if (summary->regression != (o.loss == "mse")) {
      return absl::InvalidArgumentError(absl::StrCat(
          flag, "=", flag == std::string("--train_data") ? o.train_path : o.test_path, ": y holds ",
          summary->regression ? "float32 targets" : "int64 class labels", ", --loss=", o.loss,
          " needs ", o.loss == "mse" ? "float32 targets" : "int64 class labels"));
    }
  }
  if (train->regression && train->num_classes != test->num_classes) {
    return absl::InvalidArgumentError(absl::StrCat("--train_data has ", train->num_classes,
                                                   " targets per example, --test_data ",
                                                   test->num_classes));
  }
  return absl::OkStatus();
}

absl::StatusOr<Dataset> LoadData(const DataOptions& o, Split split, DataShard shard) {
  if (o.name == "npz") {
    const bool train = split == Split::kTrain;
    absl::StatusOr<Dataset> d = LoadNpzDataset(train ? o.train_path : o.test_path,
                                               train ? "--train_data" : "--test_data", shard);
    if (!d.ok()) return d;
    // Both splits' labels decide the classes, so that every process builds
    // the same model whichever split it loads.
    absl::StatusOr<NpzSummary> other = InspectNpzDataset(train ? o.test_path : o.train_path,
                                                         train ? "--test_data" : "--train_data");
    if (!other.ok()) return other.status();
    if (!d->regression()) d->num_classes = std::max(d->num_classes, other->num_classes);
    return d;
  }
  if (o.name == "fashion-mnist") return LoadFashionMnist(o.dir, split, shard);
  absl::StatusOr<Dataset> d = LoadWholeData(o, split);
  if (!d.ok()) return d;
  if (absl::Status s = d->KeepShard(std::move(shard)); !s.ok()) return s;
  return d;
}

absl::StatusOr<Dataset> LoadWholeData(const DataOptions& o, Split split) {
  if (o.name == "fashion-mnist") return LoadFashionMnist(o.dir, split);
  if (o.name != "synthetic") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown data set '", o.name, "' (expected fashion-mnist, synthetic or npz)"));
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
  if (o.name == "npz") {
    absl::StatusOr<NpzArrays> a = OpenNpzArrays(o.train_path, "--train_data");
    if (!a.ok()) return a.status();
    return a->x.rows();
  }
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

absl::StatusOr<std::vector<int64_t>> LoadTrainingLabels(const DataOptions& o) {
  if (o.name == "npz") {
    absl::StatusOr<NpzArrays> a = OpenNpzArrays(o.train_path, "--train_data");
    if (!a.ok()) return a.status();
    if (a->y.dtype == "<f4") {
      return absl::InvalidArgumentError(absl::StrCat(
          "--train_data=", o.train_path, " holds regression targets, not class labels"));
    }
    std::vector<int64_t> labels;
    int64_t classes = 0;
    if (absl::Status s = ReadLabels(*a, o.train_path, "--train_data", {}, &labels, &classes);
        !s.ok()) {
      return s;
    }
    return labels;
  }
  if (o.name != "fashion-mnist") {
    absl::StatusOr<Dataset> whole = LoadWholeData(o, Split::kTrain);
    if (!whole.ok()) return whole.status();
    return std::move(whole->labels);
  }
  const std::string path = FashionMnistFile(o.dir, "train-labels-idx1-ubyte");
  absl::StatusOr<std::string> bytes = ReadMaybeGzipped(path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<std::vector<int64_t>> dims = IdxDims(*bytes, 1, path);
  if (!dims.ok()) return dims.status();
  std::vector<int64_t> labels((*dims)[0]);
  for (int64_t i = 0; i < (*dims)[0]; ++i) {
    labels[i] = static_cast<unsigned char>((*bytes)[8 + i]);
  }
  return labels;
}

}  // namespace hips
