// The refusal matrix (docs/security.md): every RPC of both services, called
// with each kind of wrong credentials, is refused with the right code, and
// the servers count what reached them. HQ and an aggregator are served on
// loopback as the daemons serve them (their gRPC adapters, without
// LibTorch); the certificates are made as `hips local --tls` makes them.

#include "services/net/security.h"

#include <unistd.h>

#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "cli/run_credentials.h"
#include "gtest/gtest.h"
#include "services/net/grpc_util.h"
#include "tests/rpc_probe.h"
#include "tests/served_tiers.h"

namespace hips {
namespace {

constexpr char kClusterToken[] = "security-test-cluster-token";
constexpr char kAdminToken[] = "security-test-admin-token";

std::string NewDir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/hips-security-", name, "-", getpid());
  std::system(absl::StrCat("rm -rf ", dir, " && mkdir -p ", dir).c_str());
  return dir;
}

std::string TlsFile(const std::string& dir, const std::string& file) {
  return absl::StrCat(dir, "/", kTlsDir, "/", file);
}

// What the process called `name` of the run in `dir` is configured with.
SecurityOptions Tokens() {
  SecurityOptions s;
  s.cluster_token = kClusterToken;
  s.admin_token = kAdminToken;
  return s;
}
SecurityOptions Mtls(const std::string& dir, const std::string& name) {
  SecurityOptions s = Tokens();
  s.tls = {TlsFile(dir, name + ".pem"), TlsFile(dir, name + ".key"), TlsFile(dir, "ca.pem")};
  return s;
}

ClientCredentials Client(const std::string& token) {
  ClientCredentials c;
  c.token = token;
  return c;
}
// A TLS client trusting `dir`'s CA, presenting `name`'s certificate (none
// for an empty name).
ClientCredentials TlsClient(const std::string& dir, const std::string& name,
                            const std::string& token) {
  ClientSecurity s;
  s.token = token;
  s.tls.ca = TlsFile(dir, "ca.pem");
  if (!name.empty()) {
    s.tls.cert = TlsFile(dir, name + ".pem");
    s.tls.key = TlsFile(dir, name + ".key");
  }
  absl::StatusOr<ClientCredentials> c = MakeClientCredentials(s);
  EXPECT_TRUE(c.ok()) << c.status();
  return c.ok() ? *c : ClientCredentials();
}

// Every RPC of both servers, called once with `credentials` as the
// aggregator `aggregator_id` (to HQ) and the worker `worker_id`.
Codes Probe(const ServedTiers& servers, const ClientCredentials& credentials,
            const std::string& aggregator_id, const std::string& worker_id) {
  return CallEveryRpc(servers.hq_address(), servers.aggregator_address(), credentials,
                      aggregator_id, worker_id, ServedTiers::kFloats);
}

TEST(RefusalMatrixTest, TokensOnLoopback) {
  // As a default `hips local`: plaintext on loopback, cluster and admin
  // tokens.
  ServedTiers servers(Tokens(), Tokens());
  EXPECT_EQ(Probe(servers, Client(""), "agg-0", "worker-0"),
            Every(grpc::StatusCode::UNAUTHENTICATED))
      << "no credentials";
  EXPECT_EQ(Probe(servers, Client("not-this-clusters-token"), "agg-0", "worker-0"),
            Every(grpc::StatusCode::UNAUTHENTICATED))
      << "a wrong token";
  EXPECT_EQ(Probe(servers, Client(kClusterToken), "agg-0", "worker-0"),
            Every(grpc::StatusCode::OK, {{"Hq.SetMode", grpc::StatusCode::PERMISSION_DENIED}}))
      << "the cluster token: everything but the admin call";
  EXPECT_EQ(Probe(servers, Client(kAdminToken), "agg-0", "worker-0"), Every(grpc::StatusCode::OK))
      << "the admin token";
  // Every refusal counted once, by reason.
  EXPECT_EQ(servers.hq_refusals(),
            (std::map<std::string, int64_t>{{"unauthenticated", 10}, {"permission_denied", 1}}));
  EXPECT_EQ(servers.aggregator_refusals(),
            (std::map<std::string, int64_t>{{"unauthenticated", 8}}));
}

// Member tokens (docs/security.md): HQ takes the data calls of aggregators'
// tokens, the aggregator those of workers' tokens, each for its own id only;
// the cluster token reads the status and does nothing else.
TEST(RefusalMatrixTest, MemberTokens) {
  absl::StatusOr<MemberKeyPair> keys = NewMemberKeyPair();
  absl::StatusOr<MemberKeyPair> other = NewMemberKeyPair();
  ASSERT_TRUE(keys.ok() && other.ok());
  SecurityOptions hq = Tokens(), agg = Tokens();
  hq.member_key = agg.member_key = keys->public_key;
  ServedTiers servers(hq, agg);
  auto token = [&](const MemberKeyPair& k, const std::string& id, MemberRole role) {
    return Client(*IssueMemberToken(k.secret_key, id, role));
  };
  const ClientCredentials agg0 = token(*keys, "agg-0", MemberRole::kAggregator);
  const ClientCredentials worker0 = token(*keys, "worker-0", MemberRole::kWorker);
  const grpc::StatusCode kDenied = grpc::StatusCode::PERMISSION_DENIED;
  const grpc::StatusCode kOk = grpc::StatusCode::OK;
  const Codes kAggregatorRefuses = {{"Aggregator.PushGradient", kDenied},
                                    {"Aggregator.PullWeights", kDenied},
                                    {"Aggregator.Heartbeat", kDenied},
                                    {"Aggregator.GetStatus", kDenied}};
  const Codes kHqRefuses = {{"Hq.PushAggregate", kDenied},
                            {"Hq.PullWeights", kDenied},
                            {"Hq.Heartbeat", kDenied},
                            {"Hq.GetStatus", kDenied},
                            {"Hq.SetMode", kDenied}};
  Codes as_agg0 = Every(kOk, kAggregatorRefuses);
  as_agg0["Hq.GetStatus"] = as_agg0["Hq.SetMode"] = kDenied;
  EXPECT_EQ(Probe(servers, agg0, "agg-0", "agg-0"), as_agg0)
      << "agg-0's token: HQ's data calls as agg-0; not the aggregator's (a home's), nor status";
  Codes as_worker0 = Every(kOk, kHqRefuses);
  as_worker0["Aggregator.GetStatus"] = kDenied;
  EXPECT_EQ(Probe(servers, worker0, "agg-0", "worker-0"), as_worker0)
      << "worker-0's token: the aggregator's data calls as worker-0; nothing at HQ";
  EXPECT_EQ(Probe(servers, worker0, "agg-0", "worker-1"), Every(kDenied))
      << "worker-0's token speaking for worker-1 (push, pull, heartbeat and leave)";
  EXPECT_EQ(Probe(servers, agg0, "agg-1", "worker-0"), Every(kDenied))
      << "agg-0's token speaking for agg-1, and acting as a home";
  EXPECT_EQ(Probe(servers, Client(kClusterToken), "agg-0", "worker-0"),
            Every(kDenied, {{"Hq.GetStatus", kOk}, {"Aggregator.GetStatus", kOk}}))
      << "the cluster token: the status only";
  EXPECT_EQ(Probe(servers, Client(kAdminToken), "agg-0", "worker-0"),
            Every(kDenied, {{"Hq.GetStatus", kOk},
                            {"Aggregator.GetStatus", kOk},
                            {"Hq.SetMode", kOk}}))
      << "the admin token: status and the admin call only";
  EXPECT_EQ(Probe(servers, token(*other, "agg-0", MemberRole::kAggregator), "agg-0", "agg-0"),
            Every(grpc::StatusCode::UNAUTHENTICATED))
      << "another cluster's key";
  std::string forged = *IssueMemberToken(keys->secret_key, "worker-0", MemberRole::kWorker);
  forged.replace(forged.find("worker-0"), 8, "worker-1");
  EXPECT_EQ(Probe(servers, Client(forged), "agg-0", "worker-1"),
            Every(grpc::StatusCode::UNAUTHENTICATED))
      << "worker-0's signature under worker-1's id";
  // Every refusal counted once, by reason.
  EXPECT_EQ(servers.hq_refusals(),
            (std::map<std::string, int64_t>{{"permission_denied", 2 + 5 + 5 + 5 + 4 + 3},
                                            {"unauthenticated", 10}}));
  EXPECT_EQ(servers.aggregator_refusals(),
            (std::map<std::string, int64_t>{{"permission_denied", 4 + 1 + 4 + 4 + 3 + 3},
                                            {"unauthenticated", 8}}));
}

class MutualTlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    run_ = new std::string(NewDir("run"));
    other_ = new std::string(NewDir("other"));
    // As hips local --tls makes them; a second CA for the stranger.
    ASSERT_TRUE(
        WriteRunCredentials(*run_, true, {"hq", "agg-0", "agg-1", "worker-0", "worker-1"}).ok());
    // (WriteRunCredentials makes the CLI's too.)
    ASSERT_TRUE(WriteRunCredentials(*other_, true, {"agg-0", "worker-0"}).ok());
  }
  static void TearDownTestSuite() {
    std::system(absl::StrCat("rm -rf ", *run_, " ", *other_).c_str());
    delete run_;
    delete other_;
  }
  static std::string* run_;
  static std::string* other_;
};
std::string* MutualTlsTest::run_ = nullptr;
std::string* MutualTlsTest::other_ = nullptr;

TEST_F(MutualTlsTest, RefusesWhatTheHandshakeOrTheIdentityDoesNotAllow) {
  ServedTiers servers(Mtls(*run_, "hq"), Mtls(*run_, "agg-0"));
  // Refused by the TLS handshake, before any call reaches hips (so not
  // counted by it): a plaintext client, a TLS client without a
  // certificate, a certificate from another CA. The tokens do not help.
  EXPECT_EQ(Probe(servers, Client(kAdminToken), "agg-0", "worker-0"),
            Every(grpc::StatusCode::UNAVAILABLE))
      << "a plaintext client";
  EXPECT_EQ(Probe(servers, TlsClient(*run_, "", kAdminToken), "agg-0", "worker-0"),
            Every(grpc::StatusCode::UNAVAILABLE))
      << "no client certificate";
  {
    ClientSecurity stranger;
    stranger.token = kAdminToken;
    stranger.tls = {TlsFile(*other_, "agg-0.pem"), TlsFile(*other_, "agg-0.key"),
                    TlsFile(*run_, "ca.pem")};
    absl::StatusOr<ClientCredentials> c = MakeClientCredentials(stranger);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(Probe(servers, *c, "agg-0", "worker-0"), Every(grpc::StatusCode::UNAVAILABLE))
        << "a certificate from another CA";
  }
  // A member's certificate speaking for another member: refused by hips
  // (its status is anyone's to read; the admin call needs the admin token).
  EXPECT_EQ(
      Probe(servers, TlsClient(*run_, "agg-1", ""), "agg-0", "agg-0"),
      Every(grpc::StatusCode::PERMISSION_DENIED, {{"Hq.GetStatus", grpc::StatusCode::OK},
                                                  {"Aggregator.GetStatus", grpc::StatusCode::OK}}))
      << "agg-1's certificate as agg-0 (and as a worker)";
  EXPECT_EQ(
      Probe(servers, TlsClient(*run_, "worker-1", ""), "agg-0", "worker-0"),
      Every(grpc::StatusCode::PERMISSION_DENIED, {{"Hq.GetStatus", grpc::StatusCode::OK},
                                                  {"Aggregator.GetStatus", grpc::StatusCode::OK}}))
      << "worker-1's certificate as agg-0 and as worker-0";
  // Its own certificate is credential enough for the data calls of its
  // role (its OU) and for status, not for the admin call; with the admin
  // token that too. A certificate of no role (the CLI's) makes no data call.
  const grpc::StatusCode kDenied = grpc::StatusCode::PERMISSION_DENIED;
  const Codes kNotAsAHome = {{"Aggregator.PushGradient", kDenied},
                             {"Aggregator.PullWeights", kDenied},
                             {"Aggregator.Heartbeat", kDenied}};
  Codes agg0 = Every(grpc::StatusCode::OK, kNotAsAHome);
  EXPECT_EQ(Probe(servers, TlsClient(*run_, "agg-0", kAdminToken), "agg-0", "agg-0"), agg0)
      << "agg-0's certificate: HQ's data calls, not a home's";
  agg0["Hq.SetMode"] = kDenied;
  EXPECT_EQ(Probe(servers, TlsClient(*run_, "agg-0", ""), "agg-0", "agg-0"), agg0);
  EXPECT_EQ(Probe(servers, TlsClient(*run_, "worker-0", ""), "worker-0", "worker-0"),
            Every(grpc::StatusCode::OK, {{"Hq.PushAggregate", kDenied},
                                         {"Hq.PullWeights", kDenied},
                                         {"Hq.Heartbeat", kDenied},
                                         {"Hq.SetMode", kDenied}}))
      << "worker-0's certificate: a home's data calls, not HQ's";
  Codes cli = Every(kDenied, {{"Hq.GetStatus", grpc::StatusCode::OK},
                              {"Aggregator.GetStatus", grpc::StatusCode::OK}});
  EXPECT_EQ(Probe(servers, TlsClient(*run_, kCliIdentity, ""), "hips-cli", "hips-cli"), cli)
      << "the CLI's certificate";
  EXPECT_EQ(servers.hq_refusals(),
            (std::map<std::string, int64_t>{{"permission_denied", 4 + 4 + 1 + 4 + 4}}));
  EXPECT_EQ(servers.aggregator_refusals(),
            (std::map<std::string, int64_t>{{"permission_denied", 3 + 3 + 3 + 3 + 3}}));
}

}  // namespace
}  // namespace hips
