// Elastic membership on real processes (docs/modes.md, "Elastic
// membership"): an MDC started by hand into a running cluster takes part in
// HQ's rounds, and one stopped for good is not waited for once it said
// goodbye; homes that join and leave every second lose nothing, and every
// gradient a tier accepted is applied once.

#include <signal.h>

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "services/testing/wait_for.h"
#include "tests/process_cluster.h"

namespace hips {
namespace {

const std::string kBin = HIPS_BIN_DIR;

bool HqHolds(ProcessCluster& c, const std::string& aggregator) {
  absl::StatusOr<HqStatus> s = c.QueryHq();
  if (!s.ok()) return false;
  for (const std::string& a : s->server.live_aggregators) {
    if (a == aggregator) return true;
  }
  return false;
}

ProcessClusterOptions Options(const std::string& name, int64_t lease_ms) {
  ProcessClusterOptions o;
  o.bin_dir = kBin;
  o.run_dir = NewRunDir(::testing::TempDir(), name);
  o.lease_ms = lease_ms;
  o.hq_args = {"--max_versions=100000", "--eval_every=0"};
  return o;
}

// HQ starts with a quorum of one MDC. A second one, started by hand with
// homes of its own, joins: its aggregates are applied in HQ's rounds. Then
// it is stopped for good (SIGTERM) while its homes still train: it says
// goodbye, and HQ's rounds go on without it at once, not a lease (5 s
// here) later.
TEST(ElasticTest, AnMdcStartedByHandTakesPartAndIsNotWaitedForOnceItSaidGoodbye) {
  ProcessClusterOptions o = Options("elastic-mdc", 5000);
  o.aggregators = 1;
  o.workers = 2;
  o.later_aggregators = 1;
  o.later_workers = 2;
  ProcessCluster c(o);
  ASSERT_TRUE(c.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return c.Version() >= 5; }, absl::Seconds(90)));

  ASSERT_TRUE(c.StartAggregator(1, /*min_homes=*/2).ok());
  ASSERT_TRUE(c.StartWorker(2, {1}).ok());
  ASSERT_TRUE(c.StartWorker(3, {1}).ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<AggregatorStatus> s = c.QueryAggregator(1);
        return s.ok() && s->counters.gradients_forwarded >= 20;
      },
      absl::Seconds(90)))
      << "agg-1 never contributed";
  EXPECT_TRUE(HqHolds(c, "agg-1"));
  // Its first aggregates may come after HQ closed a round that did not
  // wait for it (it joined mid-round): refused as late, never applied.
  absl::StatusOr<HqStatus> before = c.QueryHq();
  ASSERT_TRUE(before.ok());
  for (const auto& [reason, n] : before->server.aggregates_dropped) {
    EXPECT_TRUE(reason == "round_closed" || reason == "stale_version") << reason << ": " << n;
  }
  EXPECT_GT(before->server.gradients_applied, 0);

  // It stops while its homes still train (they know no other MDC, and
  // retry it): without its goodbye, HQ's rounds would wait for it, a
  // member with live homes, until its 5 s lease ran out.
  const absl::Time stopped = absl::Now();
  c.Terminate("aggregator-1");
  EXPECT_FALSE(HqHolds(c, "agg-1"));
  const int64_t version = c.Version();
  ASSERT_TRUE(WaitFor([&] { return c.Version() >= version + 5; }, absl::Seconds(4)))
      << "HQ's rounds waited for the MDC that left";
  // What the homes' leaving cut short may arrive late, and is refused as
  // such: nothing else is dropped.
  absl::StatusOr<HqStatus> hq = c.QueryHq();
  ASSERT_TRUE(hq.ok());
  for (const auto& [reason, n] : hq->server.aggregates_dropped) {
    EXPECT_TRUE(reason == "round_closed" || reason == "stale_version") << reason << ": " << n;
  }
  std::printf("measured: HQ went on without agg-1 %.2f s after its SIGTERM (lease 5 s); "
              "aggregates dropped as late: %lld\n",
              absl::ToDoubleSeconds(absl::Now() - stopped),
              static_cast<long long>(SumCounts(hq->server.aggregates_dropped)));
}

// One MDC, two steady homes, and four more that come and go: 60 times one
// of them starts or stops (SIGTERM: a goodbye; every third stop is a kill
// -9: its lease of 1 s runs out), each once the aggregator saw the one
// before (about a second each). Training goes on throughout,
// and at the end every gradient is accounted for: each accepted one
// applied once at HQ, none pending, none duplicated.
class ChurnTest : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(ChurnTest, HomesJoiningAndLeavingEverySecondLoseNothing) {
  ProcessClusterOptions o = Options("elastic-churn", 1000);
  o.aggregators = 1;
  o.workers = 2;
  o.later_workers = 4;
  o.hq_args.insert(o.hq_args.end(), GetParam().begin(), GetParam().end());
  ProcessCluster c(o);
  ASSERT_TRUE(c.Start().ok());
  ASSERT_TRUE(WaitFor([&] { return c.Version() >= 3; }, absl::Seconds(90)));
  const int64_t start_version = c.Version();
  int changes = 0;
  int kills = 0;
  for (int second = 0; second < 60; ++second) {
    const int k = 2 + second % 4;
    const std::string name = absl::StrCat("worker-", k);
    if (!c.Running(name)) {
      ASSERT_TRUE(c.StartWorker(k, {0}).ok());
    } else if (second % 3 == 0) {
      c.Kill(name);
      ++kills;
    } else {
      c.Terminate(name);
    }
    ++changes;
    // The next change once this one took effect at the aggregator (a
    // start joined; a goodbye said, or a killed home's 1 s lease run out).
    const bool running = c.Running(name);
    ASSERT_TRUE(WaitFor([&] { return c.HoldsLease(0, name) == running; }, absl::Seconds(30)))
        << name << (running ? " never joined" : " never left");
  }
  for (int k = 2; k < 6; ++k) {
    const std::string name = absl::StrCat("worker-", k);
    if (c.Running(name)) c.Terminate(name);
  }
  const int64_t churned_version = c.Version();
  EXPECT_GT(churned_version, start_version + 30) << "training stalled under churn";
  // The steady homes leave too; then nothing is in flight anywhere.
  c.Terminate("worker-0");
  c.Terminate("worker-1");
  absl::StatusOr<HqStatus> hq;
  absl::StatusOr<AggregatorStatus> agg;
  ASSERT_TRUE(WaitFor(
      [&] {
        hq = c.QueryHq();
        agg = c.QueryAggregator(0);
        return hq.ok() && agg.ok() && agg->counters.gradients_pending == 0 &&
               hq->server.gradients_pending == 0 &&
               hq->server.gradients_received == agg->counters.gradients_forwarded;
      },
      absl::Seconds(30)));
  const AggregatorCounters& a = agg->counters;
  const ParameterServerStatus& h = hq->server;
  // Every push the aggregator received ended in one place.
  EXPECT_EQ(a.gradients_received, a.gradients_duplicate + SumCounts(a.gradients_dropped) +
                                      a.gradients_forwarded + a.gradients_pending);
  // HQ took every gradient the aggregator forwarded, and applied each once.
  EXPECT_EQ(h.gradients_received, h.gradients_applied + h.gradients_duplicate +
                                      SumCounts(h.gradients_dropped) + h.gradients_pending);
  EXPECT_EQ(h.gradients_applied, a.gradients_forwarded);
  EXPECT_EQ(h.gradients_duplicate, 0);
  std::printf("measured: %d membership changes (%d kills) in 60 s, versions %lld -> %lld, "
              "%lld gradients applied, %lld dropped at the aggregator\n",
              changes, kills, static_cast<long long>(start_version),
              static_cast<long long>(churned_version),
              static_cast<long long>(h.gradients_applied),
              static_cast<long long>(SumCounts(a.gradients_dropped)));
}

std::string ModeName(const ::testing::TestParamInfo<std::vector<std::string>>& info) {
  return info.param[0] == "--mode=sync" ? "sync" : "fedavg";
}

INSTANTIATE_TEST_SUITE_P(Modes, ChurnTest,
                         ::testing::Values(std::vector<std::string>{"--mode=sync"},
                                           std::vector<std::string>{"--mode=fedavg",
                                                                    "--local_steps=2"}),
                         ModeName);

}  // namespace
}  // namespace hips
