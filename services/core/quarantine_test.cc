#include "services/core/quarantine.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

using ::testing::HasSubstr;

TEST(QuarantineTest, StrikesInARowPutAMemberOutForItsLength) {
  Quarantine q(absl::Seconds(60));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int i = 1; i < Quarantine::kStrikes; ++i) EXPECT_FALSE(q.Strike("liar", t0));
  EXPECT_TRUE(q.Check("liar", t0).ok());
  EXPECT_TRUE(q.Strike("liar", t0));
  EXPECT_EQ(q.quarantined(), 1);
  const absl::Status out = q.Check("liar", t0 + absl::Seconds(59));
  EXPECT_EQ(out.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(out.message(), HasSubstr("liar is put out for another 1s"));
  EXPECT_TRUE(q.Check("other", t0).ok());
  // Strikes while it is out do not put it out again (or for longer).
  for (int i = 0; i < 2 * Quarantine::kStrikes; ++i) EXPECT_FALSE(q.Strike("liar", t0));
  EXPECT_EQ(q.quarantined(), 1);
  // Over at its end; strikes count afresh from there.
  EXPECT_TRUE(q.Check("liar", t0 + absl::Seconds(60)).ok());
  EXPECT_FALSE(q.Strike("liar", t0 + absl::Seconds(61)));
  EXPECT_TRUE(q.Check("liar", t0 + absl::Seconds(61)).ok());
}

TEST(QuarantineTest, ATakenContributionStartsTheStrikesAgain) {
  Quarantine q(absl::Seconds(60));
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  for (int round = 0; round < 3; ++round) {
    for (int i = 1; i < Quarantine::kStrikes; ++i) EXPECT_FALSE(q.Strike("w0", t0));
    q.Clear("w0");
  }
  EXPECT_TRUE(q.Check("w0", t0).ok());
  EXPECT_EQ(q.quarantined(), 0);
}

TEST(QuarantineTest, ZeroLengthIsOff) {
  Quarantine q(absl::ZeroDuration());
  for (int i = 0; i < 3 * Quarantine::kStrikes; ++i) EXPECT_FALSE(q.Strike("liar", absl::Now()));
  EXPECT_TRUE(q.Check("liar", absl::Now()).ok());
  EXPECT_FALSE(q.enabled());
}

TEST(QuarantineTest, ValidatesItsFlag) {
  EXPECT_TRUE(ValidateQuarantineMs(0).ok());
  EXPECT_TRUE(ValidateQuarantineMs(Quarantine::kMaxMilliseconds).ok());
  EXPECT_THAT(ValidateQuarantineMs(-1).message(), HasSubstr("--quarantine_ms must be in [0, "));
  EXPECT_FALSE(ValidateQuarantineMs(Quarantine::kMaxMilliseconds + 1).ok());
}

}  // namespace
}  // namespace hips
