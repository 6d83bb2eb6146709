#include "services/data/npz.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/data/dataset.h"

// make_test_npz.py writes the files (numpy.savez) at build time.

namespace hips {
namespace {

std::string File(const std::string& name) { return absl::StrCat(HIPS_TEST_NPZ, "/", name); }

// small.npz: x[i] = i + k/10 for the k-th of its 6 floats, y[i] = i % 3.
void ExpectSmallRows(const Dataset& d, const std::vector<int64_t>& rows) {
  ASSERT_EQ(d.num_examples(), static_cast<int64_t>(rows.size()));
  EXPECT_EQ(d.example_shape, (std::vector<int64_t>{2, 3}));
  for (size_t r = 0; r < rows.size(); ++r) {
    EXPECT_EQ(d.labels[r], rows[r] % 3) << r;
    for (int k = 0; k < 6; ++k) {
      EXPECT_FLOAT_EQ(d.features[r * 6 + k], static_cast<float>(rows[r]) + k / 10.0f) << r;
    }
  }
}

TEST(NpzTest, ReadsSavezAndSavezCompressed) {
  for (const char* name : {"small.npz", "small_compressed.npz"}) {
    absl::StatusOr<NpzFile> f = NpzFile::Open(File(name));
    ASSERT_TRUE(f.ok()) << f.status();
    EXPECT_EQ(f->names(), (std::vector<std::string>{"x", "y"}));
    absl::StatusOr<NpyHeader> x = f->Header("x");
    ASSERT_TRUE(x.ok()) << x.status();
    EXPECT_EQ(x->dtype, "<f4");
    EXPECT_EQ(x->shape, (std::vector<int64_t>{10, 2, 3}));
    EXPECT_EQ(x->row_bytes(), 24);
    EXPECT_TRUE(absl::IsNotFound(f->Header("z").status()));

    absl::StatusOr<Dataset> d = LoadNpzDataset(File(name), "--train_data");
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(d->num_classes, 3);
    EXPECT_EQ(d->num_whole_examples(), 10);
    ExpectSmallRows(*d, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
  }
}

TEST(NpzTest, AShardHoldsOnlyItsRowsAndGathersByWholeIndex) {
  absl::StatusOr<Dataset> shard =
      LoadNpzDataset(File("small_compressed.npz"), "--train_data", DataShard{1, 3});
  ASSERT_TRUE(shard.ok()) << shard.status();
  ExpectSmallRows(*shard, {1, 4, 7});
  EXPECT_EQ(shard->num_whole_examples(), 10);
  EXPECT_EQ(shard->num_classes, 3);  // from every label, not only the shard's
  std::vector<float> features;
  std::vector<int64_t> labels;
  shard->Gather({7, 1}, &features, &labels);
  EXPECT_EQ(labels, (std::vector<int64_t>{1, 1}));
  EXPECT_FLOAT_EQ(features[0], 7.0f);
  EXPECT_FLOAT_EQ(features[6], 1.0f);

  // The same rows as keeping the shard of the whole set.
  absl::StatusOr<Dataset> whole = LoadNpzDataset(File("small.npz"), "--train_data");
  ASSERT_TRUE(whole.ok());
  ASSERT_TRUE(whole->KeepShard(DataShard{1, 3}).ok());
  EXPECT_EQ(whole->features, shard->features);
  EXPECT_EQ(whole->labels, shard->labels);
  EXPECT_EQ(whole->num_whole_examples(), 10);
  EXPECT_FALSE(LoadNpzDataset(File("small.npz"), "--train_data", DataShard{3, 3}).ok());
}

// A home's part under --partition: exactly the examples listed.
TEST(NpzTest, AShardGivenAsItsExamplesHoldsThoseAndGathersByWholeIndex) {
  absl::StatusOr<Dataset> part =
      LoadNpzDataset(File("small_compressed.npz"), "--train_data", DataShard{0, 4, {2, 5, 9}});
  ASSERT_TRUE(part.ok()) << part.status();
  ExpectSmallRows(*part, {2, 5, 9});
  EXPECT_EQ(part->num_whole_examples(), 10);
  std::vector<float> features;
  std::vector<int64_t> labels;
  part->Gather({9, 2}, &features, &labels);
  EXPECT_FLOAT_EQ(features[0], 9.0f);
  EXPECT_FLOAT_EQ(features[6], 2.0f);
  absl::StatusOr<Dataset> whole = LoadNpzDataset(File("small.npz"), "--train_data");
  ASSERT_TRUE(whole.ok());
  ASSERT_TRUE(whole->KeepShard(DataShard{0, 4, {2, 5, 9}}).ok());
  EXPECT_EQ(whole->features, part->features);
  EXPECT_EQ(whole->labels, part->labels);
  // Lists that are not a part of these 10 rows: refused, naming the fault.
  for (const std::vector<int64_t>& bad :
       std::vector<std::vector<int64_t>>{{5, 2}, {2, 2}, {3, 10}, {-1, 4}}) {
    absl::StatusOr<Dataset> d =
        LoadNpzDataset(File("small.npz"), "--train_data", DataShard{0, 4, bad});
    ASSERT_FALSE(d.ok()) << bad[0] << "," << bad[1];
    EXPECT_NE(d.status().message().find("ascending, distinct and below 10"), std::string::npos)
        << d.status();
    Dataset copy = *whole;
    EXPECT_FALSE(copy.KeepShard(DataShard{0, 4, bad}).ok());
  }
}

TEST(NpzTest, BadFilesAreRefusedInOneLineNamingTheFileAndTheFault) {
  const struct {
    const char* file;
    absl::StatusCode code;
    const char* says;
  } cases[] = {
      {"missing.npz", absl::StatusCode::kNotFound, "missing.npz: No such file"},
      {"not_a_zip.npz", absl::StatusCode::kInvalidArgument, "not a .npz file"},
      {"truncated.npz", absl::StatusCode::kInvalidArgument, "not a .npz file"},
      {"damaged.npz", absl::StatusCode::kInvalidArgument, "array 'x': CRC mismatch"},
      {"x_float64.npz", absl::StatusCode::kInvalidArgument,
       "x is '<f8', hips needs float32 ('<f4') examples"},
      {"y_int32.npz", absl::StatusCode::kInvalidArgument,
       "y is '<i4', hips needs int64 ('<i8') class labels"},
      {"lengths_differ.npz", absl::StatusCode::kInvalidArgument, "x has 10 examples, y has 9"},
      {"no_y.npz", absl::StatusCode::kInvalidArgument,
       "needs arrays 'x' and 'y', the file has 'x'"},
      {"fortran.npz", absl::StatusCode::kInvalidArgument, "Fortran order"},
      {"negative_label.npz", absl::StatusCode::kInvalidArgument, "y[3] is -1"},
      {"x_nan.npz", absl::StatusCode::kInvalidArgument, "x holds nan in example 7"},
      {"flat_x.npz", absl::StatusCode::kInvalidArgument, "x has shape [10], hips needs [N, ...]"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<Dataset> d = LoadNpzDataset(File(c.file), "--train_data");
    ASSERT_FALSE(d.ok()) << c.file;
    EXPECT_EQ(d.status().code(), c.code) << c.file << ": " << d.status();
    const std::string message(d.status().message());
    EXPECT_THAT(message, ::testing::StartsWith("--train_data=")) << c.file;
    EXPECT_THAT(message, ::testing::HasSubstr(c.file));
    EXPECT_THAT(message, ::testing::HasSubstr(c.says)) << c.file;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(NpzTest, DataOptionsCheckBothSplitsAndTheClassesComeFromBoth) {
  DataOptions o;
  o.name = "npz";
  o.train_path = File("small.npz");
  o.test_path = File("test_split.npz");
  EXPECT_TRUE(CheckDataOptions(o).ok()) << CheckDataOptions(o);
  EXPECT_EQ(*CountTrainingExamples(o), 10);
  // The test split has a label 4: both splits see 5 classes.
  absl::StatusOr<Dataset> train = LoadData(o, Split::kTrain, DataShard{0, 2});
  absl::StatusOr<Dataset> test = LoadData(o, Split::kTest);
  ASSERT_TRUE(train.ok() && test.ok());
  EXPECT_EQ(train->num_classes, 5);
  EXPECT_EQ(test->num_classes, 5);
  ExpectSmallRows(*train, {0, 2, 4, 6, 8});

  o.test_path = File("other_shape.npz");
  EXPECT_THAT(CheckDataOptions(o).message(),
              ::testing::HasSubstr("--train_data examples are [2, 3], --test_data examples [6]"));
  o.test_path = "";
  EXPECT_THAT(CheckDataOptions(o).message(), ::testing::HasSubstr("--test_data=: no file given"));
  o.test_path = File("y_int32.npz");
  EXPECT_THAT(CheckDataOptions(o).message(), ::testing::HasSubstr("--test_data="));
  o.name = "fashion-mnist";
  EXPECT_THAT(CheckDataOptions(o).message(), ::testing::HasSubstr("are for --data=npz"));
  o = DataOptions();
  o.name = "csv";
  EXPECT_THAT(CheckDataOptions(o).message(), ::testing::HasSubstr("unknown data set 'csv'"));
}

TEST(NpzTest, FloatTargetsMakeARegressionSetShardedLikeLabels) {
  absl::StatusOr<Dataset> d =
      LoadNpzDataset(File("float_targets.npz"), "--train_data", DataShard{1, 4});
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_TRUE(d->regression());
  EXPECT_EQ(d->target_size, 2);
  EXPECT_EQ(d->num_classes, 2);
  EXPECT_TRUE(d->labels.empty());
  EXPECT_EQ(d->targets, (std::vector<float>{2, -1, 10, -5, 18, -9}));  // rows 1, 5, 9
  EXPECT_EQ(d->num_examples(), 3);
  std::vector<float> features, targets;
  std::vector<int64_t> labels;
  d->Gather({9, 1}, &features, &labels, &targets);
  EXPECT_EQ(targets, (std::vector<float>{18, -9, 2, -1}));
  EXPECT_TRUE(labels.empty());
  EXPECT_FLOAT_EQ(features[0], 9.0f);

  DataOptions o;
  o.name = "npz";
  o.loss = "mse";
  o.train_path = o.test_path = File("float_targets.npz");
  EXPECT_TRUE(CheckDataOptions(o).ok()) << CheckDataOptions(o);
  o.test_path = File("small.npz");
  EXPECT_THAT(CheckDataOptions(o).message(),
              ::testing::HasSubstr("y holds int64 class labels, --loss=mse needs float32 targets"));
}

TEST(NpyHeaderTest, ParsesVersionsAndRefusesWhatItCannotRead) {
  const auto header = [](int major, const std::string& dict) {
    std::string h = std::string("\x93NUMPY", 6) + static_cast<char>(major) + '\0';
    const size_t n = dict.size();
    h += static_cast<char>(n & 0xff);
    h += static_cast<char>(n >> 8);
    if (major > 1) h += std::string(2, '\0');
    return h + dict;
  };
  size_t consumed = 0;
  absl::StatusOr<NpyHeader> h = ParseNpyHeader(
      header(2, "{'descr': '<i8', 'fortran_order': False, 'shape': (5,), }"), &consumed);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->shape, (std::vector<int64_t>{5}));
  EXPECT_EQ(consumed, 12 + 57u);
  h = ParseNpyHeader(header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }"),
                     &consumed);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->rows(), 1);
  EXPECT_FALSE(ParseNpyHeader("\x93NUMPX\x01\x00\x00\x00", &consumed).ok());
  EXPECT_FALSE(ParseNpyHeader(header(4, "{}"), &consumed).ok());
  EXPECT_FALSE(ParseNpyHeader(header(1,
                                     "{'descr': [('a', '<f4')], 'fortran_order': False, "
                                     "'shape': (2,), }"),
                              &consumed)
                   .ok());
  EXPECT_FALSE(
      ParseNpyHeader(header(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }"),
                     &consumed)
          .ok());
  EXPECT_FALSE(ParseNpyHeader(header(1,
                                     "{'descr': '<f4', 'fortran_order': False, 'shape': "
                                     "(1099511627776, 1099511627776), }"),
                              &consumed)
                   .ok());
  EXPECT_EQ(DtypeBytes("<f4"), 4);
  EXPECT_EQ(DtypeBytes("|u1"), 1);
  EXPECT_EQ(DtypeBytes("<U7"), 0);
}

}  // namespace
}  // namespace hips
