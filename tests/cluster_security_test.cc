// The real daemons as `hips local` starts them (docs/security.md): with the
// run's tokens a client without one is refused on every RPC and counted,
// and with --tls the cluster trains over mutual TLS while a plaintext
// client, even one holding the token, does not get through the handshake.

#include <stdlib.h>

#include <map>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "cli/run_credentials.h"
#include "gtest/gtest.h"
#include "services/testing/wait_for.h"
#include "tests/process_cluster.h"
#include "tests/rpc_probe.h"

namespace hips {
namespace {

const std::string kBin = HIPS_BIN_DIR;

ProcessClusterOptions Options(const std::string& name, bool tls) {
  ProcessClusterOptions o;
  o.bin_dir = kBin;
  std::string dir = absl::StrCat(::testing::TempDir(), "/hips-", name, "-XXXXXX");
  o.run_dir = mkdtemp(dir.data()) != nullptr ? dir : ::testing::TempDir();
  o.tls = tls;
  o.hq_args = {"--max_versions=100000", "--eval_every=0"};
  return o;
}

void ReachVersion(ProcessCluster& c, int64_t version) {
  ASSERT_TRUE(WaitFor([&] { return c.Version() >= version; }, absl::Seconds(90)))
      << "HQ stuck at version " << c.Version() << "; see " << c.run_dir();
}

TEST(ClusterSecurityTest, ADefaultClusterRefusesAClientWithoutATokenOnEveryRpc) {
  ProcessCluster c(Options("no-token", /*tls=*/false));
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 5);
  EXPECT_EQ(CallEveryRpc(c.hq_address(), c.aggregator_address(0), ClientCredentials(), "agg-0",
                         "worker-0", 4),
            Every(grpc::StatusCode::UNAUTHENTICATED));
  absl::StatusOr<HqStatus> hq = c.QueryHq();
  ASSERT_TRUE(hq.ok()) << hq.status();
  EXPECT_EQ(hq->calls_refused, (std::map<std::string, int64_t>{{"unauthenticated", 5}}));
  absl::StatusOr<AggregatorStatus> agg = c.QueryAggregator(0);
  ASSERT_TRUE(agg.ok()) << agg.status();
  EXPECT_EQ(agg->calls_refused, (std::map<std::string, int64_t>{{"unauthenticated", 4}}));
  // Nothing of it reached training, which goes on.
  EXPECT_EQ(hq->server.aggregates_dropped.count("forbidden"), 0u);
  ReachVersion(c, hq->server.version + 5);
}

// Each member holds its own token (member tokens): a home's token pushes,
// pulls, heartbeats and leaves for that home only, never at HQ; the cluster
// token reads the status and nothing else.
TEST(ClusterSecurityTest, AHomesTokenSpeaksOnlyForThatHome) {
  ProcessCluster c(Options("member-tokens", /*tls=*/false));
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 5);
  absl::StatusOr<std::string> home = ReadTokenFile(MemberTokenPath(c.run_dir(), "worker-0"));
  absl::StatusOr<std::string> cluster =
      ReadTokenFile(absl::StrCat(c.run_dir(), "/", kClusterTokenFile));
  ASSERT_TRUE(home.ok() && cluster.ok()) << home.status() << cluster.status();
  ClientCredentials as_home, as_cluster;
  as_home.token = *home;
  as_cluster.token = *cluster;
  EXPECT_EQ(CallEveryRpc(c.hq_address(), c.aggregator_address(0), as_home, "agg-0", "worker-1",
                         4),
            Every(grpc::StatusCode::PERMISSION_DENIED))
      << "worker-0's token as worker-1 (and as agg-0 at HQ)";
  EXPECT_EQ(CallEveryRpc(c.hq_address(), c.aggregator_address(0), as_cluster, "agg-0",
                         "worker-0", 4),
            Every(grpc::StatusCode::PERMISSION_DENIED,
                  {{"Hq.GetStatus", grpc::StatusCode::OK},
                   {"Aggregator.GetStatus", grpc::StatusCode::OK}}))
      << "the cluster token";
  absl::StatusOr<HqStatus> hq = c.QueryHq();
  ASSERT_TRUE(hq.ok()) << hq.status();
  EXPECT_EQ(hq->calls_refused, (std::map<std::string, int64_t>{{"permission_denied", 9}}));
  absl::StatusOr<AggregatorStatus> agg = c.QueryAggregator(0);
  ASSERT_TRUE(agg.ok()) << agg.status();
  EXPECT_EQ(agg->calls_refused, (std::map<std::string, int64_t>{{"permission_denied", 7}}));
  // worker-1 was not made to leave: training goes on with all four (HQ
  // learns of them from the aggregators' heartbeats, some time after they
  // joined: waited for, bounded).
  ReachVersion(c, hq->server.version + 5);
  EXPECT_TRUE(WaitFor(
      [&] {
        hq = c.QueryHq();
        return hq.ok() && hq->server.live_workers.size() == 4u;
      },
      absl::Seconds(10)))
      << (hq.ok() ? absl::StrCat(hq->server.live_workers.size(), " live workers")
                  : hq.status().ToString());
  absl::StatusOr<AggregatorStatus> second = c.QueryAggregator(1);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->counters.live_workers, (std::vector<std::string>{"worker-1", "worker-3"}));
}

TEST(ClusterSecurityTest, TrainsOverMutualTlsAndRefusesAPlaintextClient) {
  ProcessCluster c(Options("mtls", /*tls=*/true));
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 5);
  absl::StatusOr<std::string> token =
      ReadTokenFile(absl::StrCat(c.run_dir(), "/", kClusterTokenFile));
  ASSERT_TRUE(token.ok()) << token.status();
  ClientCredentials plaintext;
  plaintext.token = *token;
  EXPECT_EQ(
      CallEveryRpc(c.hq_address(), c.aggregator_address(1), plaintext, "agg-1", "worker-1", 4),
      Every(grpc::StatusCode::UNAVAILABLE));
  // Every member joins over mTLS (a worker may join after version 5: a sync
  // round waits only for the live ones), and status is read over mTLS, as
  // hips-cli.
  absl::StatusOr<HqStatus> hq;
  EXPECT_TRUE(WaitFor(
      [&] {
        hq = c.QueryHq();
        return hq.ok() && hq->server.live_aggregators.size() == 2 &&
               hq->server.live_workers.size() == 4;
      },
      absl::Seconds(60)));
  ASSERT_TRUE(hq.ok()) << hq.status();
  EXPECT_EQ(hq->server.live_aggregators.size(), 2u);
  EXPECT_EQ(hq->server.live_workers.size(), 4u);
  EXPECT_TRUE(hq->calls_refused.empty());  // the handshake refused them
}

}  // namespace
}  // namespace hips
