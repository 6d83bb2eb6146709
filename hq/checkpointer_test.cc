#include "hq/checkpointer.h"

#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

// Encodes just the version; the first encode blocks until `release`.
struct SlowCodec {
  absl::Notification started;
  absl::Notification release;

  CheckpointEncoder Encoder() {
    return [this](const Checkpoint& c) -> absl::StatusOr<std::string> {
      if (!started.HasBeenNotified()) {
        started.Notify();
        release.WaitForNotification();
      }
      return absl::StrCat("v", c.version);
    };
  }
  static absl::StatusOr<Checkpoint> Decode(absl::string_view bytes) {
    Checkpoint c;
    if (bytes.empty() || bytes[0] != 'v' || !absl::SimpleAtoi(bytes.substr(1), &c.version)) {
      return absl::DataLossError("not a test checkpoint");
    }
    return c;
  }
};

TEST(CheckpointerTest, WritesInTheBackgroundAndSkipsOffersOvertakenByNewerOnes) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/checkpointer-", getpid());
  std::filesystem::remove_all(dir);
  SlowCodec codec;
  Checkpointer checkpointer(CheckpointStore({dir, 5}, codec.Encoder(), SlowCodec::Decode));
  Checkpoint c;
  c.version = 10;
  checkpointer.Offer(c);  // returns at once though the write blocks
  codec.started.WaitForNotification();
  c.version = 20;
  checkpointer.Offer(c);
  c.version = 30;
  checkpointer.Offer(c);  // replaces 20, which was still waiting
  codec.release.Notify();
  checkpointer.Flush();
  const Checkpointer::Stats stats = checkpointer.stats();
  EXPECT_EQ(stats.written, 2);
  EXPECT_EQ(stats.replaced, 1);
  EXPECT_EQ(stats.failed, 0);
  EXPECT_EQ(stats.last_version, 30);
  CheckpointStore reader({dir, 5}, codec.Encoder(), SlowCodec::Decode);
  ASSERT_EQ(reader.List().size(), 2u);
  absl::StatusOr<Checkpoint> newest = reader.LoadNewest();
  ASSERT_TRUE(newest.ok()) << newest.status();
  EXPECT_EQ(newest->version, 30);
  std::filesystem::remove_all(dir);
}

TEST(CheckpointerTest, AFailedWriteIsCountedAndTheNextOneStillHappens) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/checkpointer-fail-", getpid());
  std::filesystem::remove_all(dir);
  int calls = 0;
  CheckpointEncoder flaky = [&calls](const Checkpoint& c) -> absl::StatusOr<std::string> {
    if (++calls == 1) return absl::InternalError("disk on fire");
    return absl::StrCat("v", c.version);
  };
  Checkpointer checkpointer(CheckpointStore({dir, 2}, flaky, SlowCodec::Decode));
  Checkpoint c;
  c.version = 1;
  checkpointer.Offer(c);
  checkpointer.Flush();
  c.version = 2;
  checkpointer.Offer(c);
  checkpointer.Flush();
  const Checkpointer::Stats stats = checkpointer.stats();
  EXPECT_EQ(stats.failed, 1);
  EXPECT_EQ(stats.written, 1);
  EXPECT_EQ(stats.last_version, 2);
  EXPECT_TRUE(absl::IsInternal(stats.last_error));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace hips
