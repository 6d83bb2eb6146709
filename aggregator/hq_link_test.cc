// HqLink against HQ in memory (FakeHqClient): weights flow down, aggregates
// up with retries, heartbeats carry the aggregator's members, and a
// shutdown ends every call. Waits are on conditions, each bounded.

#include "aggregator/hq_link.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "aggregator/testing/fake_hq_client.h"
#include "gtest/gtest.h"
#include "services/testing/wait_for.h"
#include "services/time/clock.h"

namespace hips {
namespace {

constexpr absl::Duration kWait = absl::Seconds(30);  // bounds every wait

AggregatorOptions Options(int workers) {
  AggregatorOptions o;
  o.id = "agg-0";
  o.expected_workers = workers;
  return o;
}

HqLinkOptions Fast() {
  HqLinkOptions o;
  o.long_poll = absl::Milliseconds(200);
  o.min_backoff = absl::Milliseconds(1);
  o.max_backoff = absl::Milliseconds(5);
  o.address = "127.0.0.1:7001";
  return o;
}

GradientPush Push(const std::string& worker, int64_t version, int64_t sequence) {
  GradientPush p;
  p.sender = worker;
  p.version = version;
  p.samples = 2;
  p.loss_sum = 1.0;
  p.sequence = sequence;
  p.gradient = {1, 2, 3};
  return p;
}

TEST(HqLinkTest, WeightsHqPublishesReachTheAggregator) {
  FakeHqClient hq;
  hq.Publish(ZeroWeights(3, 0));
  Aggregator agg(Options(1));
  HqLink link(&agg, &hq, Fast());
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> first =
      agg.WaitForWeights(0, absl::Now() + kWait);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->version, 0);
  hq.Publish(ZeroWeights(3, 1));
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> second =
      agg.WaitForWeights(1, absl::Now() + kWait);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ((*second)->version, 1);
}

TEST(HqLinkTest, AnAggregateIsRetriedThroughTransientErrorsAndItsPushAnsweredOnlyThen) {
  FakeHqClient hq;
  hq.Publish(ZeroWeights(3, 0, {Mode::kAsync, 0}));
  std::atomic<int> calls{0};
  hq.SetPushHandler([&](const AggregatePush& a) -> absl::StatusOr<PushResult> {
    if (++calls <= 2) return absl::UnavailableError("HQ is restarting");
    return PushResult{a.version, false, 5};
  });
  Aggregator agg(Options(1));
  HqLink link(&agg, &hq, Fast());
  ASSERT_TRUE(agg.WaitForWeights(0, absl::Now() + kWait).ok());
  absl::StatusOr<PushResult> answer = agg.AcceptGradient(Push("w0", 0, 100));
  ASSERT_TRUE(answer.ok()) << answer.status();
  EXPECT_EQ(answer->newest_version, 5);
  EXPECT_EQ(calls.load(), 3);
  const std::vector<AggregatePush> pushes = hq.pushes();
  ASSERT_EQ(pushes.size(), 3u);
  for (const AggregatePush& a : pushes) {
    EXPECT_EQ(a.sequence, pushes[0].sequence);  // the same aggregate each time
    EXPECT_EQ(a.sum, (std::vector<float>{2, 4, 6}));
  }
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_forwarded, 1);
  EXPECT_EQ(c.gradients_pending, 0);
  EXPECT_EQ(c.aggregates_refused, 0);
}

TEST(HqLinkTest, ARefusalIsTheWorkersAnswerAndIsNotRetried) {
  FakeHqClient hq;
  hq.Publish(ZeroWeights(3, 4, {Mode::kSsp, 1}));
  hq.SetPushHandler([](const AggregatePush&) -> absl::StatusOr<PushResult> {
    return absl::FailedPreconditionError("3 versions stale; the bound is 1");
  });
  Aggregator agg(Options(1));
  HqLink link(&agg, &hq, Fast());
  ASSERT_TRUE(agg.WaitForWeights(4, absl::Now() + kWait).ok());
  absl::StatusOr<PushResult> answer = agg.AcceptGradient(Push("w0", 4, 100));
  EXPECT_TRUE(absl::IsFailedPrecondition(answer.status())) << answer.status();
  EXPECT_EQ(hq.pushes().size(), 1u);
  EXPECT_EQ(agg.counters().aggregates_refused, 1);
}

TEST(HqLinkTest, HeartbeatsReportTheLiveWorkersAndCarryHqsAnswerBack) {
  FakeHqClient hq;
  hq.Publish(ZeroWeights(3, 7));
  // HQ is at version 7: this aggregator joins a cluster that already
  // trains (it restarted), and HQ knows where w0's data order continues.
  hq.SetHeartbeatHandler([](const HeartbeatRequestData&) -> absl::StatusOr<HeartbeatAnswer> {
    HeartbeatAnswer answer;
    answer.lease = absl::Milliseconds(40);
    answer.version = 7;
    answer.data_positions = {{"w0", 12}};
    return answer;
  });
  AggregatorOptions options = Options(2);  // forming: waits for 2 workers at start
  // w0 heartbeats once: its lease must outlast a slow (sanitized, loaded)
  // start of the link's first heartbeat.
  options.lease = absl::Minutes(5);
  Aggregator agg(options);
  ASSERT_TRUE(agg.Heartbeat("w0", 1, false).ok());
  ASSERT_TRUE(agg.counters().forming);
  HqLink link(&agg, &hq, Fast());
  ASSERT_TRUE(hq.WaitForHeartbeats(3, kWait));
  const HeartbeatRequestData first = hq.heartbeats()[0];
  EXPECT_EQ(first.member, "agg-0");
  EXPECT_EQ(first.live_workers, std::vector<std::string>{"w0"});
  EXPECT_TRUE(first.forming);
  EXPECT_EQ(first.address, "127.0.0.1:7001");
  EXPECT_FALSE(hq.heartbeats()[2].forming);  // it stopped waiting after HQ's answer
  EXPECT_FALSE(agg.counters().forming);
  EXPECT_EQ(agg.Heartbeat("w0", 1, false)->data_positions.at("w0"), 12);
}

// Whether HQ answers in time is judged on the link's clock: a simulated one
// that jumps two leases ahead makes HQ late at once (no real wait).
TEST(HqLinkTest, HqAnsweringIsJudgedOnTheLinksClock) {
  SimulatedClock clock;
  FakeHqClient hq;
  hq.Publish(ZeroWeights(3, 0));
  std::atomic<bool> answering{true};
  hq.SetHeartbeatHandler([&](const HeartbeatRequestData&) -> absl::StatusOr<HeartbeatAnswer> {
    if (!answering.load()) return absl::UnavailableError("HQ is paused");
    HeartbeatAnswer answer;
    answer.lease = absl::Milliseconds(200);
    return answer;
  });
  Aggregator agg(Options(1));
  HqLinkOptions options = Fast();
  options.clock = &clock;
  HqLink link(&agg, &hq, options);
  ASSERT_TRUE(hq.WaitForHeartbeats(1, kWait));
  ASSERT_TRUE(WaitFor([&] { return link.HqAnswering(); }, kWait));
  answering.store(false);
  const size_t before = hq.heartbeats().size();
  ASSERT_TRUE(hq.WaitForHeartbeats(before + 1, kWait));  // one refused at least
  clock.AdvanceBy(absl::Milliseconds(401));              // two leases with no answer
  EXPECT_FALSE(link.HqAnswering());
  answering.store(true);
  EXPECT_TRUE(WaitFor([&] { return link.HqAnswering(); }, kWait));
}

TEST(HqLinkTest, ShutdownEndsACallInFlightAndCountsWhatNeverReachedHq) {
  FakeHqClient hq;
  hq.Publish(ZeroWeights(3, 0, {Mode::kAsync, 0}));
  // HQ never answers: the call hangs until the link gives up.
  hq.SetPushHandler([&hq](const AggregatePush&) -> absl::StatusOr<PushResult> {
    hq.WaitUntilCancelled(kWait);
    return absl::CancelledError("cancelled");
  });
  Aggregator agg(Options(1));
  auto link = std::make_unique<HqLink>(&agg, &hq, Fast());
  ASSERT_TRUE(agg.WaitForWeights(0, absl::Now() + kWait).ok());
  absl::Notification answered;
  absl::StatusOr<PushResult> answer;
  agg.AcceptGradient(Push("w0", 0, 100), [&](absl::StatusOr<PushResult> r) {
    answer = std::move(r);
    answered.Notify();
  });
  ASSERT_TRUE(hq.WaitForPushes(1, kWait));
  link->Shutdown();  // returns once every thread of the link is joined
  ASSERT_TRUE(answered.HasBeenNotified());
  EXPECT_TRUE(absl::IsUnavailable(answer.status())) << answer.status();
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_dropped.at("shutdown"), 1);
  EXPECT_EQ(c.gradients_pending, 0);
  link.reset();  // a second shutdown (the destructor's) is a no-op
}

// Workers on threads of their own push, heartbeat and read the status all
// at once, while the link forwards to an HQ that publishes a new version for
// every aggregate (one aggregator: each completes its sync round). Every
// gradient is answered once, summed once, and the counters add up. The
// ThreadSanitizer run (scripts/sanitizers.sh) runs this against an
// instrumented Abseil.
class ConcurrentWorkersTest : public ::testing::TestWithParam<Mode> {};

TEST_P(ConcurrentWorkersTest, EveryGradientIsAnsweredAndSummedOnce) {
  constexpr int kWorkers = 4;
  constexpr int kRounds = 25;
  const ModeConfig mode{GetParam(), 0};
  FakeHqClient hq;
  hq.Publish(ZeroWeights(3, 0, mode));
  absl::Mutex mu;
  int64_t version = 0;
  hq.SetPushHandler([&](const AggregatePush& a) -> absl::StatusOr<PushResult> {
    absl::MutexLock lock(&mu);
    hq.Publish(ZeroWeights(3, ++version, mode));
    return PushResult{a.version, false, version};
  });
  Aggregator agg(Options(kWorkers));
  HqLink link(&agg, &hq, Fast());
  ASSERT_TRUE(agg.WaitForWeights(0, absl::Now() + kWait).ok());
  std::vector<std::thread> workers;
  std::atomic<int> failures{0};
  for (int k = 0; k < kWorkers; ++k) {
    workers.emplace_back([&, k] {
      const std::string id = absl::StrCat("w", k);
      int64_t at = 0;
      for (int i = 0; i < kRounds; ++i) {
        ASSERT_TRUE(agg.Heartbeat(id, 1, false).ok());
        (void)agg.status();
        absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> w =
            agg.WaitForWeights(at, absl::Now() + kWait);
        if (!w.ok()) {
          ++failures;
          return;
        }
        at = (*w)->version + (mode.mode == Mode::kSync ? 1 : 0);
        GradientPush p = Push(id, (*w)->version, 1000 * (k + 1) + i + 1);
        p.gradient = {1, static_cast<float>(k), 0};
        if (!agg.AcceptGradient(std::move(p)).ok()) ++failures;
      }
    });
  }
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(failures.load(), 0);
  ASSERT_TRUE(hq.WaitForPushes(1, kWait));
  // Every gradient reached HQ in exactly one aggregate: samples (2 each)
  // and sums add up to what the workers sent.
  int64_t samples = 0, contributors = 0;
  float ones = 0, ks = 0;
  for (const AggregatePush& a : hq.pushes()) {
    samples += a.total_samples;
    contributors += a.contributors;
    if (a.contributors == 0) continue;
    ones += a.sum[0];
    ks += a.sum[1];
  }
  EXPECT_EQ(contributors, kWorkers * kRounds);
  EXPECT_EQ(samples, 2 * kWorkers * kRounds);
  EXPECT_EQ(ones, 2.0f * kWorkers * kRounds);
  EXPECT_EQ(ks, 2.0f * kRounds * (0 + 1 + 2 + 3));
  const AggregatorCounters c = agg.counters();
  EXPECT_EQ(c.gradients_received, kWorkers * kRounds);
  EXPECT_EQ(c.gradients_forwarded, kWorkers * kRounds);
  EXPECT_EQ(c.gradients_pending, 0);
  EXPECT_EQ(c.gradients_duplicate, 0);
}

INSTANTIATE_TEST_SUITE_P(Modes, ConcurrentWorkersTest, ::testing::Values(Mode::kSync, Mode::kAsync),
                         [](const ::testing::TestParamInfo<Mode>& info) {
                           return std::string(ModeName(info.param));
                         });

}  // namespace
}  // namespace hips
