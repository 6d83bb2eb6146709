// Different sites on real processes (docs/noniid.md): HQ's buffered rounds
// across MDCs (--hq_buffer) with one MDC whose homes are 4 times slower, and
// FedProx (--proximal_mu); homes killed mid-round in each. Every gradient a
// tier forwarded is applied once, the slow MDC's work counts, and nothing
// waits on a dead home longer than its lease.

#include <cmath>
#include <cstdio>
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
constexpr int64_t kLeaseMs = 1000;

// Two MDCs of two homes each: agg-0 has worker-0 and worker-2, agg-1
// worker-1 and worker-3, whose steps take 4 times as long.
ProcessClusterOptions Options(const std::string& name, std::vector<std::string> hq_args) {
  ProcessClusterOptions o;
  o.bin_dir = kBin;
  o.run_dir = NewRunDir(::testing::TempDir(), name);
  o.lease_ms = kLeaseMs;
  o.hq_args = {"--max_versions=100000", "--eval_every=0", "--mode=fedavg", "--local_steps=2"};
  o.worker_args = {"--batch_size=32"};
  o.hq_args.insert(o.hq_args.end(), hq_args.begin(), hq_args.end());
  o.worker_extra_args[1] = {"--slowdown=4"};
  o.worker_extra_args[3] = {"--slowdown=4"};
  return o;
}

void ReachVersion(ProcessCluster& c, int64_t version) {
  ASSERT_TRUE(WaitFor([&] { return c.Version() >= version; }, absl::Seconds(90)))
      << "HQ stuck at version " << c.Version() << "; see " << c.run_dir();
}

int64_t Forwarded(ProcessCluster& c, int a) {
  absl::StatusOr<AggregatorStatus> s = c.QueryAggregator(a);
  return s.ok() ? s->counters.gradients_forwarded : -1;
}

// Stops the homes still running, waits (bounded) until nothing is pending
// at HQ, then checks that what each tier forwarded was applied once: every
// tier's books balance and HQ saw no duplicate; under the buffer no MDC's
// round was superseded.
void StopHomesAndExpectEveryForwardedGradientAppliedOnce(ProcessCluster& c,
                                                         const std::vector<std::string>& homes,
                                                         bool buffered) {
  for (const std::string& w : homes) c.Terminate(w);
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<HqStatus> h = c.QueryHq();
        return h.ok() && h->server.gradients_pending == 0;
      },
      absl::Seconds(30)));
  absl::StatusOr<HqStatus> hq = c.QueryHq();
  ASSERT_TRUE(hq.ok()) << hq.status();
  const ParameterServerStatus& s = hq->server;
  EXPECT_EQ(s.gradients_received, s.gradients_applied + s.gradients_duplicate +
                                      SumCounts(s.gradients_dropped) + s.gradients_pending);
  EXPECT_EQ(s.gradients_duplicate, 0);
  for (int a = 0; a < 2; ++a) {
    absl::StatusOr<AggregatorStatus> agg = c.QueryAggregator(a);
    ASSERT_TRUE(agg.ok()) << agg.status();
    const AggregatorCounters& k = agg->counters;
    EXPECT_EQ(k.gradients_received, k.gradients_duplicate + SumCounts(k.gradients_dropped) +
                                        k.gradients_forwarded + k.gradients_pending)
        << agg->id;
    if (buffered) {
      EXPECT_EQ(k.gradients_dropped.count("superseded"), 0u) << agg->id;
    }
  }
}

// K = 1: HQ applies each MDC's aggregate as it comes. The fast MDC is never
// held back by the slow one, whose aggregates still count, stale. A slow
// home killed mid-round holds up only its own MDC (for a lease), and the
// fast MDC trains on meanwhile.
TEST(NonIidTest, BufferedHqCountsASlowMdcsWorkWithoutWaitingForIt) {
  ProcessCluster c(Options("buffered", {"--hq_buffer=1"}));
  const absl::Status started = c.Start();
  ASSERT_TRUE(started.ok()) << started;
  ReachVersion(c, 10);
  ASSERT_TRUE(WaitFor([&] { return Forwarded(c, 1) >= 6; }, absl::Seconds(90)))
      << "the slow MDC never contributed";
  absl::StatusOr<HqStatus> s = c.QueryHq();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(DescribeMode(s->server.mode), "fedavg(H=2,B=1)");
  // The slow MDC's aggregates arrive after the fast one's moved HQ on.
  EXPECT_GT(s->server.staleness.max(), 0);
  std::printf("measured: version %lld, largest staleness %lld, forwarded fast %lld slow %lld\n",
              static_cast<long long>(s->server.version),
              static_cast<long long>(s->server.staleness.max()),
              static_cast<long long>(Forwarded(c, 0)), static_cast<long long>(Forwarded(c, 1)));
  // Every MDC's gradients are computed on the version its round opened on,
  // and each is applied: none is refused as stale.
  EXPECT_EQ(s->server.gradients_dropped.count("stale_version"), 0u);

  // worker-1 (slow) killed mid-round: agg-1's round waits for it until its
  // lease runs out; HQ goes on with agg-0's aggregates meanwhile.
  const int64_t fast_before = Forwarded(c, 0);
  const int64_t version_before = c.Version();
  c.Kill("worker-1");
  ASSERT_TRUE(WaitFor([&] { return !c.HoldsLease(1, "worker-1"); }, absl::Seconds(10)));
  EXPECT_GT(Forwarded(c, 0), fast_before);
  EXPECT_GT(c.Version(), version_before);
  std::printf(
      "measured: while agg-1's round waited for its killed home, HQ made %lld versions "
      "and agg-0 forwarded %lld gradients\n",
      static_cast<long long>(c.Version() - version_before),
      static_cast<long long>(Forwarded(c, 0) - fast_before));
  // agg-1 goes on with worker-3 alone.
  const int64_t slow_after_kill = Forwarded(c, 1);
  ASSERT_TRUE(WaitFor([&] { return Forwarded(c, 1) >= slow_after_kill + 3; }, absl::Seconds(60)))
      << "agg-1 stalled after its home died";

  // Restarted, it rejoins agg-1's rounds.
  ASSERT_TRUE(c.Restart("worker-1").ok());
  ASSERT_TRUE(WaitFor([&] { return c.HoldsLease(1, "worker-1"); }, absl::Seconds(30)));
  ReachVersion(c, c.Version() + 5);
  StopHomesAndExpectEveryForwardedGradientAppliedOnce(
      c, {"worker-0", "worker-1", "worker-2", "worker-3"}, /*buffered=*/true);
}

// K = 2 with a polynomial weighting: every buffer holds both MDCs' turns
// (a buffer closes at K, or once every live MDC has sent), and a fast home
// killed mid-round does not stop the run.
TEST(NonIidTest, BufferedHqOfTwoWithPolynomialWeightsSurvivesAKilledHome) {
  ProcessCluster c(Options("buffered-poly", {"--hq_buffer=2", "--staleness_weighting=polynomial",
                                             "--staleness_exponent=0.5"}));
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 8);
  c.Kill("worker-2");
  const int64_t at_kill = c.Version();
  ReachVersion(c, at_kill + 5);
  ASSERT_TRUE(WaitFor([&] { return !c.HoldsLease(0, "worker-2"); }, absl::Seconds(10)));
  absl::StatusOr<HqStatus> s = c.QueryHq();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(DescribeMode(s->server.mode), "fedavg(H=2,B=2,poly=0.5)");
  EXPECT_GT(Forwarded(c, 1), 0);
  StopHomesAndExpectEveryForwardedGradientAppliedOnce(c, {"worker-0", "worker-1", "worker-3"},
                                                      /*buffered=*/true);
}

// FedProx across MDCs in sync: a home killed mid-round holds its round up
// for at most about a lease, and training goes on with the proximal term.
TEST(NonIidTest, FedProxTrainsOnAfterAHomeIsKilledMidRound) {
  ProcessClusterOptions o = Options("fedprox", {"--proximal_mu=0.1"});
  o.worker_extra_args.clear();
  ProcessCluster c(o);
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 10);
  c.Kill("worker-3");
  const int64_t at_kill = c.Version();
  ReachVersion(c, at_kill + 10);
  absl::StatusOr<HqStatus> s = c.QueryHq();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(DescribeMode(s->server.mode), "fedavg(H=2,mu=0.1)");
  EXPECT_TRUE(std::isfinite(s->server.last_loss));
  StopHomesAndExpectEveryForwardedGradientAppliedOnce(c, {"worker-0", "worker-1", "worker-2"},
                                                      /*buffered=*/false);
}

// SCAFFOLD (--fedavg_algorithm=scaffold) across two MDCs: a home killed
// mid-round, then HQ killed and restarted from its checkpoint, which holds
// the server variate after the weights (a checkpoint without it would not
// restore into this layout). Training goes on from it, and every delta
// forwarded since is applied once.
TEST(NonIidTest, ScaffoldSurvivesAKilledHomeAndHqRestartedFromItsCheckpoint) {
  ProcessClusterOptions o = Options("scaffold", {"--fedavg_algorithm=scaffold"});
  o.worker_extra_args.clear();
  o.hq_args.insert(o.hq_args.end(), {absl::StrCat("--checkpoint_dir=", o.run_dir, "/checkpoints"),
                                     "--checkpoint_every_versions=5", "--checkpoint_every_s=0"});
  ProcessCluster c(o);
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 10);
  c.Kill("worker-3");
  ReachVersion(c, c.Version() + 10);
  c.Kill("hq");
  ASSERT_TRUE(c.Restart("hq").ok());
  absl::StatusOr<HqStatus> s = c.QueryHq();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GE(s->server.resumed_from, 15);
  ReachVersion(c, s->server.resumed_from + 10);
  s = c.QueryHq();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(DescribeMode(s->server.mode), "fedavg(H=2)");
  EXPECT_TRUE(std::isfinite(s->server.last_loss));
  std::printf("measured: HQ resumed from version %lld and trained on to %lld\n",
              static_cast<long long>(s->server.resumed_from),
              static_cast<long long>(s->server.version));
  StopHomesAndExpectEveryForwardedGradientAppliedOnce(c, {"worker-0", "worker-1", "worker-2"},
                                                      /*buffered=*/false);
}

}  // namespace
}  // namespace hips
