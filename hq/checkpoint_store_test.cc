// The checkpoint store with a fake codec (the real one needs LibTorch and is
// tested in services/models/checkpoint_codec_test.cc).

#include "hq/checkpoint_store.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/casts.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

namespace fs = std::filesystem;

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// "fake <version> <samples> <weight bits>... <checksum> end": enough fields to
// tell checkpoints apart, a checksum over them, and an end marker so that a
// truncated file never decodes.
absl::StatusOr<std::string> FakeEncode(const Checkpoint& c) {
  std::vector<std::string> tokens = {"fake", absl::StrCat(c.version),
                                     absl::StrCat(c.samples_applied)};
  for (float w : c.weights) tokens.push_back(absl::StrCat(absl::bit_cast<uint32_t>(w)));
  tokens.push_back(absl::StrCat(ChecksumOf(c)));
  tokens.push_back("end");
  return absl::StrJoin(tokens, " ");
}

absl::StatusOr<Checkpoint> FakeDecode(absl::string_view bytes) {
  const std::vector<std::string> tokens = absl::StrSplit(bytes, ' ');
  if (tokens.size() < 5 || tokens.front() != "fake" || tokens.back() != "end") {
    return absl::DataLossError("not a fake checkpoint");
  }
  Checkpoint c;
  uint32_t checksum;
  if (!absl::SimpleAtoi(tokens[1], &c.version) ||
      !absl::SimpleAtoi(tokens[2], &c.samples_applied) ||
      !absl::SimpleAtoi(tokens[tokens.size() - 2], &checksum)) {
    return absl::DataLossError("bad number");
  }
  for (size_t i = 3; i + 2 < tokens.size(); ++i) {
    uint32_t bits;
    if (!absl::SimpleAtoi(tokens[i], &bits)) return absl::DataLossError("bad weight");
    c.weights.push_back(absl::bit_cast<float>(bits));
  }
  if (ChecksumOf(c) != checksum) return absl::DataLossError("checksum mismatch");
  return c;
}

Checkpoint Make(int64_t version) {
  Checkpoint c;
  c.version = version;
  c.samples_applied = 64 * version;
  c.weights = {0.5f * static_cast<float>(version), -1.25f, 3e-7f};
  return c;
}

class CheckpointStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           absl::StrCat("checkpoint_test_", getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  CheckpointStore Store(int keep = 3) {
    return CheckpointStore({dir_.string(), keep}, FakeEncode, FakeDecode);
  }
  std::string PathOf(int64_t version) const {
    return (dir_ / CheckpointStore::FileName(version)).string();
  }
  static void Overwrite(const std::string& path, const std::string& contents) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << contents;
  }

  fs::path dir_;
};

TEST_F(CheckpointStoreTest, FileNamesSortByVersion) {
  EXPECT_EQ(CheckpointStore::FileName(42), "checkpoint-000000000042.pt");
  EXPECT_EQ(CheckpointStore::FileName(1234567890123), "checkpoint-1234567890123.pt");
}

TEST_F(CheckpointStoreTest, KeepsTheNewestAndLoadsTheNewest) {
  CheckpointStore store = Store(3);
  for (int64_t v = 1; v <= 5; ++v) {
    absl::StatusOr<std::string> path = store.Write(Make(v));
    ASSERT_TRUE(path.ok()) << path.status();
    EXPECT_EQ(*path, PathOf(v));
  }
  EXPECT_THAT(store.List(), ElementsAre(PathOf(5), PathOf(4), PathOf(3)));
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) files += entry.is_regular_file() ? 1 : 0;
  EXPECT_EQ(files, 3);  // no temporary file left either

  std::vector<std::string> rejected;
  absl::StatusOr<Checkpoint> loaded = store.LoadNewest(&rejected);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->version, 5);
  EXPECT_EQ(loaded->samples_applied, 5 * 64);
  EXPECT_EQ(loaded->weights, Make(5).weights);
  EXPECT_TRUE(rejected.empty());
}

TEST_F(CheckpointStoreTest, TruncatedNewestFallsBackToThePrevious) {
  CheckpointStore store = Store();
  for (int64_t v = 1; v <= 3; ++v) ASSERT_TRUE(store.Write(Make(v)).ok());
  fs::resize_file(PathOf(3), fs::file_size(PathOf(3)) / 2);

  std::vector<std::string> rejected;
  absl::StatusOr<Checkpoint> loaded = store.LoadNewest(&rejected);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->version, 2);
  EXPECT_THAT(rejected, ElementsAre(PathOf(3)));
}

TEST_F(CheckpointStoreTest, GarbageNewestFallsBackToThePrevious) {
  CheckpointStore store = Store();
  for (int64_t v = 1; v <= 3; ++v) ASSERT_TRUE(store.Write(Make(v)).ok());
  Overwrite(PathOf(3), "\x89PNG not a checkpoint at all");
  Overwrite(PathOf(2), "");  // an empty file, as a lying disk might leave

  std::vector<std::string> rejected;
  absl::StatusOr<Checkpoint> loaded = store.LoadNewest(&rejected);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->version, 1);
  EXPECT_THAT(rejected, ElementsAre(PathOf(3), PathOf(2)));
}

TEST_F(CheckpointStoreTest, FileHoldingAnotherVersionIsRejected) {
  CheckpointStore store = Store();
  ASSERT_TRUE(store.Write(Make(1)).ok());
  ASSERT_TRUE(store.Write(Make(2)).ok());
  fs::copy_file(PathOf(1), PathOf(7));

  std::vector<std::string> rejected;
  absl::StatusOr<Checkpoint> loaded = store.LoadNewest(&rejected);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->version, 2);
  EXPECT_THAT(rejected, ElementsAre(PathOf(7)));
}

TEST_F(CheckpointStoreTest, AllCorruptedIsNotFoundAndSaysWhy) {
  CheckpointStore store = Store();
  ASSERT_TRUE(store.Write(Make(1)).ok());
  ASSERT_TRUE(store.Write(Make(2)).ok());
  Overwrite(PathOf(1), "garbage");
  fs::resize_file(PathOf(2), 5);

  std::vector<std::string> rejected;
  absl::StatusOr<Checkpoint> loaded = store.LoadNewest(&rejected);
  EXPECT_TRUE(absl::IsNotFound(loaded.status())) << loaded.status();
  EXPECT_THAT(loaded.status().message(), HasSubstr("none of the 2 checkpoints"));
  EXPECT_THAT(loaded.status().message(), HasSubstr(PathOf(2)));
  EXPECT_EQ(rejected.size(), 2u);
}

TEST_F(CheckpointStoreTest, MissingOrEmptyDirectoryIsNotFound) {
  CheckpointStore store = Store();
  EXPECT_TRUE(absl::IsNotFound(store.LoadNewest().status()));
  EXPECT_TRUE(store.List().empty());
  fs::create_directories(dir_);
  Overwrite((dir_ / "notes.txt").string(), "not a checkpoint name");
  absl::StatusOr<Checkpoint> loaded = store.LoadNewest();
  EXPECT_TRUE(absl::IsNotFound(loaded.status())) << loaded.status();
  EXPECT_THAT(loaded.status().message(), HasSubstr("no checkpoint in"));
}

TEST_F(CheckpointStoreTest, LeftoverTemporaryFilesAreIgnoredAndRemoved) {
  CheckpointStore store = Store();
  ASSERT_TRUE(store.Write(Make(1)).ok());
  // What a crash between creating and renaming leaves behind.
  const std::string leftover = PathOf(9) + ".tmp";
  Overwrite(leftover, "fake 9 0");

  std::vector<std::string> rejected;
  absl::StatusOr<Checkpoint> loaded = store.LoadNewest(&rejected);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->version, 1);
  EXPECT_TRUE(rejected.empty());
  EXPECT_FALSE(fs::exists(leftover));

  Overwrite(leftover, "fake 9 0");
  ASSERT_TRUE(store.Write(Make(2)).ok());
  EXPECT_FALSE(fs::exists(leftover));
  EXPECT_THAT(store.List(), ElementsAre(PathOf(2), PathOf(1)));
}

TEST_F(CheckpointStoreTest, BadOptionsAndPathsAreErrors) {
  EXPECT_TRUE(absl::IsInvalidArgument(Store(0).Write(Make(1)).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(Store().Write(Make(-1)).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      CheckpointStore({"", 3}, FakeEncode, FakeDecode).Write(Make(1)).status()));

  // The directory is a regular file.
  fs::create_directories(dir_.parent_path());
  Overwrite(dir_.string(), "a file");
  absl::StatusOr<std::string> written = Store().Write(Make(1));
  EXPECT_TRUE(absl::IsFailedPrecondition(written.status())) << written.status();
  EXPECT_THAT(written.status().message(), HasSubstr(dir_.string()));
  EXPECT_TRUE(absl::IsFailedPrecondition(Store().LoadNewest().status()));

  // The encoder's error comes back and nothing is written.
  fs::remove(dir_);
  CheckpointStore failing(
      {dir_.string(), 3},
      [](const Checkpoint&) -> absl::StatusOr<std::string> {
        return absl::InvalidArgumentError("cannot encode");
      },
      FakeDecode);
  EXPECT_TRUE(absl::IsInvalidArgument(failing.Write(Make(1)).status()));
  EXPECT_TRUE(failing.List().empty());
}

}  // namespace
}  // namespace hips
