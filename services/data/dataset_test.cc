#include "services/data/dataset.h"

#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

TEST(FashionMnistTest, LoadsBothSplitsFromTheDebianPackage) {
  absl::StatusOr<Dataset> train = LoadFashionMnist(kDefaultFashionMnistDir, Split::kTrain);
  ASSERT_TRUE(train.ok()) << train.status();
  absl::StatusOr<Dataset> test = LoadFashionMnist(kDefaultFashionMnistDir, Split::kTest);
  ASSERT_TRUE(test.ok()) << test.status();
  EXPECT_EQ(train->num_examples(), 60000);
  EXPECT_EQ(test->num_examples(), 10000);
  EXPECT_EQ(train->example_shape, (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(train->features.size(), 60000u * 784u);
  // Fashion-MNIST's first training example is an ankle boot (class 9) and
  // its test set holds exactly 1000 examples of each class.
  EXPECT_EQ(train->labels[0], 9);
  std::vector<int> per_class(10);
  for (int64_t y : test->labels) ++per_class[y];
  for (int c = 0; c < 10; ++c) EXPECT_EQ(per_class[c], 1000) << "class " << c;
  // Normalized pixels: black maps to -mean/std.
  EXPECT_NEAR(train->features[0], -0.2860f / 0.3530f, 1e-6);
  EXPECT_EQ(CountTrainingExamples(DataOptions()).value(), 60000);
}

TEST(FashionMnistTest, AnUnpackedCopyLoadsTheSameExamples) {
  const std::string into = absl::StrCat(::testing::TempDir(), "/hips-unpacked-fashion-mnist");
  absl::StatusOr<std::string> dir = UnpackFashionMnist(kDefaultFashionMnistDir, into);
  ASSERT_TRUE(dir.ok()) << dir.status();
  EXPECT_EQ(*dir, into);
  for (const char* name : {"train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}) {
    EXPECT_TRUE(std::filesystem::is_regular_file(absl::StrCat(into, "/", name))) << name;
    EXPECT_FALSE(std::filesystem::exists(absl::StrCat(into, "/", name, ".tmp"))) << name;
  }
  // (Each load of the training set is slow under ThreadSanitizer: three.)
  absl::StatusOr<Dataset> whole = LoadFashionMnist(into, Split::kTrain);
  for (Split split : {Split::kTrain, Split::kTest}) {
    absl::StatusOr<Dataset> packed = LoadFashionMnist(kDefaultFashionMnistDir, split);
    absl::StatusOr<Dataset> unpacked =
        split == Split::kTrain ? whole : LoadFashionMnist(into, split);
    ASSERT_TRUE(packed.ok() && unpacked.ok());
    EXPECT_TRUE(packed->features == unpacked->features);
    EXPECT_EQ(packed->labels, unpacked->labels);
  }
  // A worker's shard holds only its examples, the same as the whole set's.
  absl::StatusOr<Dataset> shard = LoadFashionMnist(into, Split::kTrain, DataShard{3, 4});
  ASSERT_TRUE(whole.ok() && shard.ok());
  EXPECT_EQ(shard->num_examples(), 15000);
  EXPECT_EQ(shard->num_whole_examples(), 60000);
  DataOptions o;
  o.dir = into;
  // Every label, without the images: what --partition splits by.
  absl::StatusOr<std::vector<int64_t>> labels = LoadTrainingLabels(o);
  ASSERT_TRUE(labels.ok()) << labels.status();
  EXPECT_EQ(*labels, whole->labels);
  // A part given as its examples: those, and the same as keeping them.
  absl::StatusOr<Dataset> part = LoadFashionMnist(into, Split::kTrain, DataShard{0, 2, {7, 59999}});
  ASSERT_TRUE(part.ok()) << part.status();
  EXPECT_EQ(part->labels, (std::vector<int64_t>{(*labels)[7], (*labels)[59999]}));
  EXPECT_EQ(part->num_whole_examples(), 60000);
  EXPECT_FALSE(LoadFashionMnist(into, Split::kTrain, DataShard{0, 2, {7, 60000}}).ok());
  ASSERT_TRUE(whole->KeepShard(DataShard{3, 4}).ok());
  EXPECT_TRUE(shard->features == whole->features);
  EXPECT_EQ(shard->labels, whole->labels);
  EXPECT_EQ(CountTrainingExamples(o).value(), 60000);
  // Nothing to unpack from: NOT_FOUND naming the file.
  absl::StatusOr<std::string> missing = UnpackFashionMnist("/nonexistent", into);
  EXPECT_TRUE(absl::IsNotFound(missing.status())) << missing.status();
  std::filesystem::remove_all(into);
}

class CorruptIdxTest : public ::testing::Test {
 protected:
  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = absl::StrCat(::testing::TempDir(), "/", name);
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, bytes.data(), bytes.size());
    gzclose(f);
    return path;
  }
  static std::string Header(uint32_t magic, std::vector<uint32_t> dims) {
    std::string h;
    for (uint32_t v : std::vector<uint32_t>{magic}) {
      for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<char>((v >> s) & 0xff));
    }
    for (uint32_t v : dims) {
      for (int s = 24; s >= 0; s -= 8) h.push_back(static_cast<char>((v >> s) & 0xff));
    }
    return h;
  }
};

TEST_F(CorruptIdxTest, TruncatedImagesAreDataLoss) {
  const std::string images = Write("img.gz", Header(0x803, {2, 2, 2}) + std::string(7, '\x01'));
  const std::string labels = Write("lbl.gz", Header(0x801, {2}) + std::string(2, '\x01'));
  absl::StatusOr<Dataset> d = LoadIdxDataset(images, labels, 0, 1);
  EXPECT_TRUE(absl::IsDataLoss(d.status())) << d.status();
}

TEST_F(CorruptIdxTest, WrongMagicAndOutOfRangeLabelsAreRefused) {
  const std::string images = Write("img2.gz", Header(0x803, {1, 1, 1}) + std::string(1, '\x01'));
  const std::string bad_magic = Write("lbl2.gz", Header(0x901, {1}) + std::string(1, '\x01'));
  EXPECT_TRUE(absl::IsInvalidArgument(LoadIdxDataset(images, bad_magic, 0, 1).status()));
  const std::string bad_label = Write("lbl3.gz", Header(0x801, {1}) + std::string(1, '\x0b'));
  EXPECT_TRUE(absl::IsInvalidArgument(LoadIdxDataset(images, bad_label, 0, 1).status()));
  const std::string mismatch = Write("lbl4.gz", Header(0x801, {2}) + std::string(2, '\x01'));
  EXPECT_TRUE(absl::IsInvalidArgument(LoadIdxDataset(images, mismatch, 0, 1).status()));
  EXPECT_TRUE(absl::IsNotFound(LoadIdxDataset("/nonexistent", bad_label, 0, 1).status()));
}

TEST(SyntheticDataTest, SameSeedsSameDataAndSplitsShareTheTask) {
  Dataset a = MakeSyntheticDataset(64, {4}, 3, 1, 2);
  Dataset b = MakeSyntheticDataset(64, {4}, 3, 1, 2);
  EXPECT_EQ(a.features, b.features);
  EXPECT_EQ(a.labels, b.labels);
  Dataset other = MakeSyntheticDataset(64, {4}, 3, 1, 3);
  EXPECT_NE(a.features, other.features);
  for (int64_t y : a.labels) {
    EXPECT_GE(y, 0);
    EXPECT_LT(y, 3);
  }
}

TEST(DatasetTest, GatherCopiesTheChosenExamples) {
  Dataset d = MakeSyntheticDataset(10, {2}, 2, 5, 5);
  std::vector<float> f;
  std::vector<int64_t> y;
  const std::vector<int64_t> idx = {7, 2};
  d.Gather(idx, &f, &y);
  ASSERT_EQ(f.size(), 4u);
  EXPECT_EQ(f[0], d.features[14]);
  EXPECT_EQ(f[3], d.features[5]);
  EXPECT_EQ(y, (std::vector<int64_t>{d.labels[7], d.labels[2]}));
}

}  // namespace
}  // namespace hips
