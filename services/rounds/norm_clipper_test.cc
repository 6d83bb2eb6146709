#include "services/rounds/norm_clipper.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"

namespace hips {
namespace {

TEST(ParseClipNormTest, AutoOffOrABound) {
  EXPECT_EQ(ParseClipNorm("auto")->kind, ClipNorm::Kind::kAuto);
  EXPECT_EQ(ParseClipNorm("off")->kind, ClipNorm::Kind::kOff);
  EXPECT_EQ(ParseClipNorm("0")->kind, ClipNorm::Kind::kOff);
  absl::StatusOr<ClipNorm> fixed = ParseClipNorm("2.5");
  ASSERT_TRUE(fixed.ok());
  EXPECT_EQ(fixed->kind, ClipNorm::Kind::kFixed);
  EXPECT_EQ(fixed->bound, 2.5);
  EXPECT_EQ(ClipNormName(*fixed), "2.5");
  EXPECT_EQ(ClipNormName(*ParseClipNorm("auto")), "auto");
  absl::StatusOr<ClipNorm> k = ParseClipNorm("auto:1.5");
  ASSERT_TRUE(k.ok()) << k.status();
  EXPECT_EQ(k->kind, ClipNorm::Kind::kAuto);
  EXPECT_EQ(k->multiple, 1.5);
  EXPECT_EQ(ClipNormName(*k), "auto:1.5");
  for (const char* bad : {"", "-1", "nan", "inf", "Auto", "1e999", "3x", "on", "auto:",
                          "auto:0", "auto:-1", "auto:101", "auto:nan", "auto:x", "auto:1:2"}) {
    absl::StatusOr<ClipNorm> c = ParseClipNorm(bad);
    EXPECT_TRUE(absl::IsInvalidArgument(c.status())) << bad;
    EXPECT_NE(c.status().message().find("--clip_norm"), std::string::npos) << c.status();
  }
}

TEST(NormClipperTest, AFixedBoundScalesDownWhatIsAboveIt) {
  NormClipper c(*ParseClipNorm("2"));
  EXPECT_EQ(c.Factor(1.0), 1.0);
  EXPECT_EQ(c.Factor(2.0), 1.0);
  EXPECT_DOUBLE_EQ(c.Factor(8.0), 0.25);  // 8 -> 2
  EXPECT_DOUBLE_EQ(c.Factor(1e30), 2e-30);
  EXPECT_EQ(c.Factor(std::numeric_limits<double>::infinity()), 1.0);  // refused elsewhere
  EXPECT_EQ(c.bound(), 2.0);
}

TEST(NormClipperTest, OffNeverClips) {
  NormClipper c(*ParseClipNorm("off"));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(c.Factor(1.0), 1.0);
  EXPECT_EQ(c.Factor(1e30), 1.0);
  EXPECT_EQ(c.bound(), 0.0);
}

TEST(NormClipperTest, AutoWithAMultipleOfItsOwn) {
  NormClipper c(*ParseClipNorm("auto:1"));
  for (int i = 0; i < NormClipper::kWarmup; ++i) c.Factor(2.0);
  EXPECT_DOUBLE_EQ(c.bound(), 2.0);
  EXPECT_DOUBLE_EQ(c.Factor(4.0), 0.5);
}

TEST(NormClipperTest, AutoFollowsThreeTimesTheMedianAndAMinorityCannotMoveIt) {
  NormClipper c(*ParseClipNorm("auto"));
  // No bound before kWarmup norms.
  for (int i = 0; i < NormClipper::kWarmup; ++i) EXPECT_EQ(c.Factor(1.0 + 0.1 * i), 1.0);
  EXPECT_DOUBLE_EQ(c.bound(), 3 * 1.2);  // the median of 1.0, 1.1, 1.2, 1.3 (upper middle)
  EXPECT_DOUBLE_EQ(c.Factor(1e30), 3.6 / 1e30);
  // One push in four is an attacker's: the bound stays three times the
  // honest median.
  for (int round = 0; round < 40; ++round) {
    for (int honest = 0; honest < 3; ++honest) EXPECT_EQ(c.Factor(1.0), 1.0);
    EXPECT_LT(c.Factor(1e30), 1e-29);
  }
  EXPECT_DOUBLE_EQ(c.bound(), 3.0);
  // It follows the honest norms as they shrink (training converges): the
  // window holds the last kWindow.
  for (int i = 0; i < NormClipper::kWindow; ++i) c.Factor(0.1);
  EXPECT_NEAR(c.bound(), 0.3, 1e-12);
  EXPECT_NEAR(c.Factor(0.6), 0.5, 1e-12);
  // A median of 0 (nothing moved) is no bound.
  NormClipper zeros(*ParseClipNorm("auto"));
  for (int i = 0; i < 10; ++i) zeros.Factor(0.0);
  EXPECT_EQ(zeros.Factor(5.0), 1.0);
}

}  // namespace
}  // namespace hips
