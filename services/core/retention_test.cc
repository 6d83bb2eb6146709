#include "services/core/retention.h"

#include <set>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

const absl::Time kStart = absl::FromUnixSeconds(1000);

TEST(RetentionTest, ForgetsMembersGoneForItsKeepAndRaisesTheHorizon) {
  Retention r(absl::Seconds(10));
  r.Touch("a", kStart);
  r.Touch("b", kStart + absl::Seconds(5));
  r.Touch("live", kStart);
  auto live = [](const std::string& id) { return id == "live"; };
  EXPECT_THAT(r.Sweep(kStart + absl::Seconds(9), 40, live), IsEmpty());
  EXPECT_EQ(r.horizon(), 0);  // nothing forgotten, no horizon
  // Sweeps come at most every keep/4: this one is too soon.
  EXPECT_THAT(r.Sweep(kStart + absl::Seconds(10), 41, live), IsEmpty());
  EXPECT_THAT(r.Sweep(kStart + absl::Seconds(12), 42, live), ElementsAre("a"));
  EXPECT_EQ(r.horizon(), 42);
  EXPECT_TRUE(r.MayRepeatForgotten(41));
  EXPECT_FALSE(r.MayRepeatForgotten(42));
  EXPECT_EQ(r.size(), 2u);  // b (heard from 7 s ago) and the live one
  // Heard from again: kept.
  r.Touch("b", kStart + absl::Seconds(14));
  EXPECT_THAT(r.Sweep(kStart + absl::Seconds(20), 50, live), IsEmpty());
  EXPECT_THAT(r.Sweep(kStart + absl::Seconds(30), 60, live), ElementsAre("b"));
  EXPECT_EQ(r.horizon(), 60);
  // The live one is never forgotten, however long ago it was touched.
  EXPECT_EQ(r.size(), 1u);
  // A horizon never goes back.
  r.Touch("c", kStart);
  EXPECT_THAT(r.Sweep(kStart + absl::Seconds(40), 10, live), ElementsAre("c"));
  EXPECT_EQ(r.horizon(), 60);
  r.Restore(70);
  EXPECT_TRUE(r.MayRepeatForgotten(69));
}

// 100,000 members come, are heard from once and go: what it remembers stays
// the members of the last `keep`.
TEST(RetentionTest, AStreamOfMembersKeepsOnlyTheRecentOnes) {
  Retention r(absl::Seconds(10));
  size_t most = 0;
  for (int i = 0; i < 100000; ++i) {
    const absl::Time now = kStart + absl::Milliseconds(i);
    r.Touch("m" + std::to_string(i), now);
    r.Sweep(now, i, [](const std::string&) { return false; });
    most = std::max(most, r.size());
  }
  // keep (10 s = 10,000 members) plus a quarter of it between sweeps.
  EXPECT_LE(most, 12501u);
  EXPECT_GE(most, 10000u);
}

}  // namespace
}  // namespace hips
