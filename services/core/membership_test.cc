#include "services/core/membership.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/core/sync_round.h"

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
  EXPECT_FALSE(m.Covers({"w0"}));  // w1 has not joined yet
  m.Touch("w1", t0);
  EXPECT_FALSE(m.forming());
  EXPECT_FALSE(m.Covers({"w0"}));
  EXPECT_TRUE(m.Covers({"w0", "w1"}));
  m.Expire(t0 + absl::Seconds(2));
  m.Touch("w0", t0 + absl::Seconds(2));
  EXPECT_TRUE(m.Covers({"w0"}));         // w1's lease ran out
  EXPECT_FALSE(m.Covers({}));            // nothing to close a round with
  m.Touch("w2", t0 + absl::Seconds(2));  // a worker that failed over to here
  EXPECT_FALSE(m.Covers({"w0"}));
  EXPECT_TRUE(m.Covers({"w0", "w2"}));

  Membership restarted(absl::Seconds(2), /*expected=*/3);
  restarted.EndForming();  // joined a cluster that already trains
  restarted.Touch("w0", t0);
  EXPECT_TRUE(restarted.Covers({"w0"}));
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

TEST(SyncRoundMembersTest, AnAggregateHoldsEachWorkerOnceAndMarksItsSenderDone) {
  SyncRound round(1, /*expected_contributions=*/0, /*quorum=*/1);
  round.Open(4);
  const std::vector<float> one = {1};
  Contribution a;
  a.sender = "agg-0";
  a.members = {"w0", "w2"};
  a.version = 4;
  a.samples = 2;
  a.contributors = 2;
  a.values = one;
  DropReason reason;
  ASSERT_EQ(*round.Add(a, &reason), SyncRound::AddOutcome::kAccepted);
  EXPECT_TRUE(round.HasSender("agg-0"));
  // A retried gradient of w2 sent on alone by agg-1: already in.
  Contribution single = a;
  single.sender = "agg-1";
  single.members = {"w2"};
  single.contributors = 1;
  single.completes_sender = false;
  EXPECT_EQ(*round.Add(single, &reason), SyncRound::AddOutcome::kDuplicate);
  EXPECT_FALSE(round.HasSender("agg-1"));
  // agg-1's own aggregate repeats w2 next to a new w1: refused whole.
  Contribution partial = a;
  partial.sender = "agg-1";
  partial.members = {"w1", "w2"};
  EXPECT_FALSE(round.Add(partial, &reason).ok());
  EXPECT_EQ(reason, DropReason::kRepeatedContributor);
  EXPECT_TRUE(round.HasSender("agg-1"));  // its part of the round is over
  EXPECT_EQ(round.accumulator().contributors(), 2);
  // An empty aggregate (its gradients all went alone) only says "done".
  Contribution empty;
  empty.sender = "agg-2";
  empty.version = 4;
  empty.contributors = 0;
  ASSERT_TRUE(round.Add(empty, &reason).ok());
  EXPECT_TRUE(round.HasSender("agg-2"));
  EXPECT_THAT(round.covered().size(), 2u);
  EXPECT_EQ(round.state(), SyncRound::State::kOpen);  // expected 0: the owner closes
  round.Close();
  EXPECT_EQ(round.state(), SyncRound::State::kClosed);
}

}  // namespace
}  // namespace hips
