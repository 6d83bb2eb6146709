#include "services/core/membership.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

TEST(MembershipTest, LeasesRenewExpireAndRejoin) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  Membership m(absl::Seconds(2), /*expected=*/2);
  EXPECT_TRUE(m.Touch("w0", t0, 11));
  EXPECT_FALSE(m.Touch("w0", t0 + absl::Seconds(1), 11));  // a renewal
  EXPECT_TRUE(m.Touch("w1", t0 + absl::Seconds(1), 21));
  EXPECT_EQ(m.NextExpiry(), t0 + absl::Seconds(3));
  EXPECT_THAT(m.Expire(t0 + absl::Seconds(2.9)), IsEmpty());
  EXPECT_THAT(m.Expire(t0 + absl::Seconds(3)), ElementsAre("w0", "w1"));
  EXPECT_EQ(m.live_count(), 0);
  EXPECT_EQ(m.NextExpiry(), absl::InfiniteFuture());
  EXPECT_TRUE(m.Touch("w0", t0 + absl::Seconds(4), 12));  // rejoins, same id
  // A restart within the lease (a new incarnation) counts as a rejoin too.
  EXPECT_TRUE(m.Touch("w0", t0 + absl::Seconds(5), 13));
  m.Leave("w0");
  EXPECT_FALSE(m.IsLive("w0"));
}

TEST(MembershipTest, FormingWaitsForTheExpectedMembersThenOnlyLiveOnesCount) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  Membership m(absl::Seconds(2), /*expected=*/2);
  EXPECT_TRUE(m.forming());
  m.Touch("w0", t0);
  EXPECT_TRUE(m.forming());  // w1 has not joined yet
  EXPECT_TRUE(m.AllLiveIn({"w0"}));
  m.Touch("w1", t0);
  EXPECT_FALSE(m.forming());
  EXPECT_FALSE(m.AllLiveIn({"w0"}));
  EXPECT_TRUE(m.AllLiveIn({"w0", "w1"}));
  m.Expire(t0 + absl::Seconds(2));
  m.Touch("w0", t0 + absl::Seconds(2));
  EXPECT_TRUE(m.AllLiveIn({"w0"}));      // w1's lease ran out
  m.Touch("w2", t0 + absl::Seconds(2));  // a worker that failed over to here
  EXPECT_FALSE(m.AllLiveIn({"w0"}));
  EXPECT_TRUE(m.AllLiveIn({"w0", "w2"}));
  m.Expire(t0 + absl::Seconds(10));
  EXPECT_TRUE(m.AllLiveIn({}));  // nobody live (a round also needs someone in: SyncPolicy)

  Membership restarted(absl::Seconds(2), /*expected=*/3);
  restarted.EndForming();  // joined a cluster that already trains
  restarted.Touch("w0", t0);
  EXPECT_FALSE(restarted.forming());
  EXPECT_TRUE(restarted.AllLiveIn({"w0"}));
}

TEST(MembershipTest, HasRoomForAtMostMaxMembersAtOnce) {
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  Membership m(absl::Seconds(2), /*expected=*/1, /*max_members=*/2);
  EXPECT_EQ(m.max_members(), 2);
  EXPECT_TRUE(m.HasRoom("w0"));
  m.Touch("w0", t0);
  m.Touch("w1", t0 + absl::Seconds(1));
  EXPECT_TRUE(m.HasRoom("w0"));   // members always have room
  EXPECT_FALSE(m.HasRoom("w2"));  // a third would exceed the limit
  m.Leave("w0");
  EXPECT_TRUE(m.HasRoom("w2"));
  m.Touch("w2", t0 + absl::Seconds(1));
  EXPECT_FALSE(m.HasRoom("w0"));
  m.Expire(t0 + absl::Seconds(3));  // both leases ran out
  EXPECT_TRUE(m.HasRoom("w0"));
  // No limit.
  Membership open(absl::Seconds(2), 1);
  for (int i = 0; i < 100; ++i) open.Touch(std::to_string(i), t0);
  EXPECT_TRUE(open.HasRoom("another"));
}

}  // namespace
}  // namespace hips
