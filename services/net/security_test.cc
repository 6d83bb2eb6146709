#include "services/net/security.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/hips-security-unit-", getpid(), "-", name);
}

// Writes `contents` to a file of mode `mode`.
std::string WriteFile(const std::string& name, const std::string& contents, mode_t mode = 0600) {
  const std::string path = TempPath(name);
  unlink(path.c_str());
  std::ofstream(path) << contents;
  chmod(path.c_str(), mode);
  return path;
}

const std::string kToken = "0123456789abcdef0123";

TEST(ReadTokenFileTest, ReadsOneLineOfPrintableAscii) {
  absl::StatusOr<std::string> t = ReadTokenFile(WriteFile("good", kToken + "\n"));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(*t, kToken);
}

TEST(ReadTokenFileTest, RefusesBadFilesNamingTheFileNeverTheToken) {
  struct Case {
    std::string name, contents;
    mode_t mode;
    std::string message;
  };
  const Case cases[] = {
      {"group-readable", kToken, 0640, "may be read by other users"},
      {"world-readable", kToken, 0604, "may be read by other users"},
      {"short", "0123456789abcde", 0600, "16 to 4096 characters"},
      {"empty", "", 0600, "16 to 4096 characters"},
      {"long", std::string(4097, 'x'), 0600, "16 to 4096 characters"},
      {"two-lines", kToken + "\n" + kToken, 0600, "one line of printable ASCII"},
      {"space", "0123456789 abcdef", 0600, "one line of printable ASCII"},
      {"binary", std::string("0123456789abcdef\x01", 17), 0600, "one line of printable ASCII"},
  };
  for (const Case& c : cases) {
    const std::string path = WriteFile(c.name, c.contents, c.mode);
    absl::StatusOr<std::string> t = ReadTokenFile(path);
    ASSERT_FALSE(t.ok()) << c.name;
    EXPECT_TRUE(absl::IsInvalidArgument(t.status())) << c.name;
    EXPECT_NE(t.status().message().find(path), std::string::npos) << t.status();
    EXPECT_NE(t.status().message().find(c.message), std::string::npos) << t.status();
    EXPECT_EQ(t.status().message().find(kToken), std::string::npos) << t.status();
  }
  absl::StatusOr<std::string> missing = ReadTokenFile(TempPath("missing"));
  EXPECT_TRUE(absl::IsInvalidArgument(missing.status()));
}

TEST(LoadSecurityTest, ChecksTheFilesGoTogether) {
  const std::string token = WriteFile("cluster", kToken);
  const std::string admin = WriteFile("admin", kToken + "-admin");
  const std::string pem = WriteFile("cert.pem", "not checked until served");
  absl::StatusOr<SecurityOptions> ok = LoadSecurity({pem, pem, pem}, token, admin, false);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->cluster_token, kToken);
  EXPECT_EQ(ok->admin_token, kToken + "-admin");

  EXPECT_NE(LoadSecurity({pem, "", ""}, "", "", false).status().message().find("go together"),
            std::string::npos);
  EXPECT_NE(LoadSecurity({"", pem, ""}, "", "", false).status().message().find("go together"),
            std::string::npos);
  EXPECT_NE(LoadSecurity({"", "", TempPath("no-ca")}, "", "", false)
                .status()
                .message()
                .find("cannot read the CA certificate"),
            std::string::npos);
  EXPECT_NE(LoadSecurity({}, token, token, false).status().message().find("must differ"),
            std::string::npos);
  EXPECT_TRUE(absl::IsInvalidArgument(LoadSecurity({}, TempPath("none"), "", false).status()));
}

TEST(LoadMemberCredentialsTest, ReadsAMemberTokenAndThePublicKeyAndRefusesWhatIsNot) {
  absl::StatusOr<MemberKeyPair> keys = NewMemberKeyPair();
  ASSERT_TRUE(keys.ok()) << keys.status();
  const std::string key = TempPath("member.key");
  ASSERT_TRUE(WriteMemberKeyFiles(key, *keys).ok());
  const std::string token = *IssueMemberToken(keys->secret_key, "home-1", MemberRole::kWorker);
  SecurityOptions s;
  ASSERT_TRUE(LoadMemberCredentials(WriteFile("member-token", token + "\n"), key + ".pub", &s).ok());
  EXPECT_EQ(s.member_token, token);
  EXPECT_EQ(s.member_key, keys->public_key);
  EXPECT_EQ(ClusterClient(s).token, token);  // presented instead of the cluster token
  s.member_token.clear();
  s.cluster_token = kToken;
  EXPECT_EQ(ClusterClient(s).token, kToken);
  // The cluster token where a member token belongs, the secret key where
  // the public one belongs, a readable token file: each named.
  SecurityOptions t;
  absl::Status bad = LoadMemberCredentials(WriteFile("not-member", kToken), "", &t);
  EXPECT_TRUE(absl::IsInvalidArgument(bad));
  EXPECT_NE(bad.message().find("does not hold a member token"), std::string::npos) << bad;
  EXPECT_EQ(bad.message().find(kToken), std::string::npos) << bad;
  EXPECT_TRUE(absl::IsInvalidArgument(LoadMemberCredentials("", key, &t)));
  EXPECT_TRUE(absl::IsInvalidArgument(
      LoadMemberCredentials(WriteFile("member-token-644", token, 0644), "", &t)));
  EXPECT_TRUE(t.member_token.empty() && t.member_key.empty());
  // --check_flags reads nothing.
  ASSERT_TRUE(DeclareMemberCredentials("/nonexistent/t", "/nonexistent/k", &t).ok());
  EXPECT_EQ(t.member_key, "<member key of /nonexistent/k>");
  unlink(key.c_str());
  unlink((key + ".pub").c_str());
}

TEST(TokenFileModeProblemTest, OwnerOnlyOrRootsGroupReadForAKubernetesSecret) {
  // The process's own file: 0600 or less, whoever the process is.
  EXPECT_EQ(TokenFileModeProblem(10001, S_IFREG | 0600, 10001), "");
  EXPECT_EQ(TokenFileModeProblem(10001, S_IFREG | 0400, 10001), "");
  EXPECT_EQ(TokenFileModeProblem(0, S_IFREG | 0600, 0), "");
  for (mode_t mode : {0640, 0604, 0660, 0644}) {
    EXPECT_NE(TokenFileModeProblem(10001, S_IFREG | mode, 10001), "") << mode;
    EXPECT_NE(TokenFileModeProblem(0, S_IFREG | mode, 0), "") << mode;
  }
  // Root's file read by uid 10001 through an fsGroup: 0440 and 0640 pass;
  // anything others could read or the group could write does not.
  EXPECT_EQ(TokenFileModeProblem(0, S_IFREG | 0440, 10001), "");
  EXPECT_EQ(TokenFileModeProblem(0, S_IFREG | 0640, 10001), "");
  for (mode_t mode : {0644, 0604, 0660, 0650, 0441}) {
    EXPECT_NE(TokenFileModeProblem(0, S_IFREG | mode, 10001), "") << mode;
  }
  // Another user's file is never group-readable.
  EXPECT_NE(TokenFileModeProblem(20002, S_IFREG | 0440, 10001), "");
}

TEST(DeclaredSecurityTest, ChecksWhatGoesTogetherWithoutReadingAFile) {
  const std::string none = TempPath("never-written");
  absl::StatusOr<SecurityOptions> s = DeclaredSecurity({none + ".pem", none + ".key", none + ".ca"},
                                                       none + ".token", none + ".admin", false);
  ASSERT_TRUE(s.ok()) << s.status();
  // The token files stand in for tokens: the server checks see them.
  EXPECT_FALSE(s->cluster_token.empty());
  EXPECT_NE(s->cluster_token, s->admin_token);
  EXPECT_TRUE(CheckServerSecurity("0.0.0.0", *s, /*needs_admin=*/true).ok());
  absl::StatusOr<SecurityOptions> no_admin = DeclaredSecurity({}, none + ".token", "", false);
  ASSERT_TRUE(no_admin.ok());
  EXPECT_NE(CheckServerSecurity("127.0.0.1", *no_admin, true).message().find("no admin"),
            std::string::npos);

  EXPECT_NE(DeclaredSecurity({none, "", ""}, "", "", false).status().message().find("go together"),
            std::string::npos);
  EXPECT_NE(DeclaredSecurity({}, none, none, false).status().message().find("must differ"),
            std::string::npos);
}

TEST(CheckClientTlsTest, ACertificateNeedsItsKeyAndTheCa) {
  EXPECT_TRUE(CheckClientTls({}).ok());
  EXPECT_TRUE(CheckClientTls({"", "", "ca.pem"}).ok());
  EXPECT_TRUE(CheckClientTls({"c.pem", "c.key", "ca.pem"}).ok());
  EXPECT_NE(CheckClientTls({"c.pem", "c.key", ""}).message().find("needs --tls_ca"),
            std::string::npos);
  EXPECT_NE(CheckClientTls({"c.pem", "", "ca.pem"}).message().find("go together"),
            std::string::npos);
}

TEST(IsLoopbackTest, OnlyThisMachine) {
  for (const char* host : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "unix:/tmp/s"}) {
    EXPECT_TRUE(IsLoopback(host)) << host;
  }
  for (const char* host : {"0.0.0.0", "::", "[::]", "10.0.0.1", "128.0.0.1", "127.0.0", "example",
                           "127.0.0.256", "", "localhost.example.com"}) {
    EXPECT_FALSE(IsLoopback(host)) << host;
  }
}

TEST(CheckPlaintextDialTest, PlaintextOnlyToThisMachineUnlessInsecure) {
  SecurityOptions plain;
  for (const char* target : {"127.0.0.1:7000", "localhost:1", "[::1]:7000", "unix:/tmp/s"}) {
    EXPECT_TRUE(CheckPlaintextDial("--hq", target, plain).ok()) << target;
  }
  for (const char* target : {"10.0.0.1:7000", "hq:7000", "[2001:db8::1]:7000", "0.0.0.0:1"}) {
    absl::Status s = CheckPlaintextDial("--hq", target, plain);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << target;
    EXPECT_NE(s.message().find(absl::StrCat("--hq=", target)), std::string::npos) << s;
    EXPECT_NE(s.message().find("--tls_ca"), std::string::npos) << s;
  }
  SecurityOptions tls;
  tls.tls.ca = "/some/ca.pem";
  EXPECT_TRUE(CheckPlaintextDial("--hq", "hq:7000", tls).ok());
  SecurityOptions insecure;
  insecure.insecure = true;
  EXPECT_TRUE(CheckPlaintextDial("--hq", "hq:7000", insecure).ok());
}

TEST(CheckServerSecurityTest, RefusesWhatWouldBeOpen) {
  SecurityOptions tokens;
  tokens.cluster_token = kToken;
  tokens.admin_token = kToken + "-admin";
  EXPECT_TRUE(CheckServerSecurity("127.0.0.1", tokens, true).ok());
  // Plaintext off loopback.
  const absl::Status open = CheckServerSecurity("0.0.0.0", tokens, true);
  EXPECT_TRUE(absl::IsInvalidArgument(open));
  EXPECT_NE(open.message().find("without TLS"), std::string::npos) << open;
  EXPECT_NE(open.message().find("--insecure"), std::string::npos) << open;
  SecurityOptions tls = tokens;
  tls.tls = {"c.pem", "k.pem", ""};
  EXPECT_TRUE(CheckServerSecurity("0.0.0.0", tls, true).ok());
  // Nobody could authenticate.
  const absl::Status none = CheckServerSecurity("127.0.0.1", SecurityOptions(), false);
  EXPECT_NE(none.message().find("no credentials"), std::string::npos) << none;
  SecurityOptions mtls;
  mtls.tls = {"c.pem", "k.pem", "ca.pem"};
  EXPECT_TRUE(CheckServerSecurity("0.0.0.0", mtls, false).ok());
  // A member key is a credential (members' tokens); a member's own token is
  // not (it is what the process presents, not what its server checks) but
  // for a worker's health-only server, which needs none.
  SecurityOptions members;
  members.member_key = std::string(32, 'k');
  EXPECT_TRUE(CheckServerSecurity("127.0.0.1", members, false).ok());
  SecurityOptions home;
  home.member_token = "hips-member-1:worker:w:sig";
  EXPECT_FALSE(CheckServerSecurity("127.0.0.1", home, false).ok());
  EXPECT_TRUE(CheckServerSecurity("127.0.0.1", home, false, /*health_only=*/true).ok());
  EXPECT_FALSE(CheckServerSecurity("0.0.0.0", home, false, /*health_only=*/true).ok());
  // HQ needs an admin token (mTLS identities are not admins).
  const absl::Status no_admin = CheckServerSecurity("127.0.0.1", mtls, true);
  EXPECT_NE(no_admin.message().find("--admin_token_file"), std::string::npos) << no_admin;
  // --insecure says the network is trusted.
  SecurityOptions insecure;
  insecure.insecure = true;
  EXPECT_TRUE(CheckServerSecurity("0.0.0.0", insecure, true).ok());
}

TEST(ClientCredentialsTest, ACertificateNeedsACa) {
  ClientSecurity s;
  s.tls.cert = "c.pem";
  s.tls.key = "k.pem";
  EXPECT_TRUE(absl::IsInvalidArgument(MakeClientCredentials(s).status()));
  s.tls = {"", "", TempPath("missing-ca.pem")};
  EXPECT_TRUE(absl::IsInvalidArgument(MakeClientCredentials(s).status()));
  absl::StatusOr<ClientCredentials> plain = MakeClientCredentials(ClientSecurity{{}, kToken});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->token, kToken);
}

TEST(RefusalCounterTest, CountsByTheCodesName) {
  RefusalCounter c;
  c.Count(absl::UnauthenticatedError("x"));
  c.Count(absl::UnauthenticatedError("y"));
  c.Count(absl::PermissionDeniedError("z"));
  c.Count(absl::ResourceExhaustedError("w"));
  EXPECT_EQ(c.counts(),
            (std::map<std::string, int64_t>{
                {"unauthenticated", 2}, {"permission_denied", 1}, {"resource_exhausted", 1}}));
}

}  // namespace
}  // namespace hips
