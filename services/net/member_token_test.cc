#include "services/net/member_token.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"
#include "services/types/ids.h"

namespace hips {
namespace {

MemberKeyPair Keys() {
  absl::StatusOr<MemberKeyPair> keys = NewMemberKeyPair();
  EXPECT_TRUE(keys.ok()) << keys.status();
  return keys.ok() ? *keys : MemberKeyPair();
}

TEST(MemberTokenTest, ATokenProvesItsMemberAndRoleUnderItsKeyOnly) {
  const MemberKeyPair keys = Keys();
  absl::StatusOr<std::string> token = IssueMemberToken(keys.secret_key, "home-7", MemberRole::kWorker);
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_TRUE(IsMemberToken(*token));
  EXPECT_TRUE(absl::StartsWith(*token, "hips-member-1:worker:home-7:"));
  absl::StatusOr<MemberIdentity> id = VerifyMemberToken(keys.public_key, *token);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->member, "home-7");
  EXPECT_EQ(id->role, MemberRole::kWorker);

  absl::StatusOr<std::string> agg =
      IssueMemberToken(keys.secret_key, "agg-0", MemberRole::kAggregator);
  ASSERT_TRUE(agg.ok());
  EXPECT_EQ(VerifyMemberToken(keys.public_key, *agg)->role, MemberRole::kAggregator);

  // Another cluster's key does not verify it.
  EXPECT_TRUE(absl::IsUnauthenticated(VerifyMemberToken(Keys().public_key, *token).status()));
}

TEST(MemberTokenTest, AWorkersTokenMayNameTheRangeOfHomesItsProcessHosts) {
  const MemberKeyPair keys = Keys();
  absl::StatusOr<std::string> token =
      IssueMemberToken(keys.secret_key, "worker-[10..19]", MemberRole::kWorker);
  ASSERT_TRUE(token.ok()) << token.status();
  absl::StatusOr<MemberIdentity> id = VerifyMemberToken(keys.public_key, *token);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->member, "worker-[10..19]");
  for (const char* home : {"worker-10", "worker-15", "worker-19"}) {
    EXPECT_TRUE(SpeaksFor(id->member, home)) << home;
  }
  for (const char* other : {"worker-9", "worker-20", "worker-010", "worker-1", "worker-",
                            "worker-1x", "agg-10", "worker-[10..19]x", ""}) {
    EXPECT_FALSE(SpeaksFor(id->member, other)) << other;
  }
  EXPECT_TRUE(SpeaksFor("worker-3", "worker-3"));
  EXPECT_FALSE(SpeaksFor("worker-3", "worker-30"));
  // Only workers host homes.
  EXPECT_TRUE(absl::IsInvalidArgument(
      IssueMemberToken(keys.secret_key, "agg-[0..3]", MemberRole::kAggregator).status()));
  const std::string forged = absl::StrReplaceAll(*token, {{":worker:", ":aggregator:"}});
  EXPECT_TRUE(absl::IsUnauthenticated(VerifyMemberToken(keys.public_key, forged).status()));
}

TEST(HomeRangeTest, ParsesRangesAndRefusesBadOnesByName) {
  absl::StatusOr<HomeRange> r = ParseHomeRange("home.[0..0]", "--member");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prefix, "home.");
  EXPECT_EQ(r->count(), 1);
  EXPECT_EQ(r->Home(0), "home.0");
  EXPECT_EQ((HomeRange{"worker-", 250, 499}.Name()), "worker-[250..499]");
  EXPECT_EQ(ParseHomeRange("worker-[250..499]", "x")->count(), 250);
  for (const char* bad : {"worker-[3..2]", "worker-[01..2]", "worker-[1..]", "worker-[..2]",
                          "worker-[1.2]", "worker-[1..2", "worker-1..2]", "wor ker-[1..2]",
                          "worker-[-1..2]", "worker-[0..16384]", "w[1..2]x", "[1..99999999999999999999]"}) {
    absl::StatusOr<HomeRange> parsed = ParseHomeRange(bad, "--member");
    EXPECT_TRUE(absl::IsInvalidArgument(parsed.status())) << bad;
    EXPECT_TRUE(absl::StrContains(parsed.status().message(), "--member")) << bad;
    EXPECT_FALSE(SpeaksFor(bad, "worker-1")) << bad;
  }
  EXPECT_TRUE(ParseHomeRange("[0..16383]", "x").ok());  // an empty prefix: ids "0".."16383"
  EXPECT_TRUE(ValidateMemberOrRange("worker-1", "x").ok());
  EXPECT_TRUE(ValidateMemberOrRange("worker-[1..2]", "x").ok());
  EXPECT_FALSE(ValidateMemberOrRange("worker-[2..1]", "x").ok());
}

TEST(MemberTokenTest, AnAlteredOrMalformedTokenIsRefusedWithoutEchoingIt) {
  const MemberKeyPair keys = Keys();
  const std::string token = *IssueMemberToken(keys.secret_key, "home-7", MemberRole::kWorker);
  const std::string signature = token.substr(token.rfind(':') + 1);
  const std::string bad[] = {
      absl::StrReplaceAll(token, {{":home-7:", ":home-8:"}}),        // another member
      absl::StrReplaceAll(token, {{":worker:", ":aggregator:"}}),    // another role
      token.substr(0, token.size() - 2),                              // a cut signature
      absl::StrCat("hips-member-1:worker:home-7:", std::string(86, 'A')),
      absl::StrCat("hips-member-2:worker:home-7:", signature),        // another format
      absl::StrCat("hips-member-1:boss:home-7:", signature),
      absl::StrCat("hips-member-1:worker:home 7:", signature),        // not an id
      absl::StrCat("hips-member-1:worker:home-7:x:", signature),      // five fields
      "hips-member-1:worker:home-7",
      "hips-member-1:",
      "",
  };
  for (const std::string& t : bad) {
    absl::StatusOr<MemberIdentity> id = VerifyMemberToken(keys.public_key, t);
    EXPECT_TRUE(absl::IsUnauthenticated(id.status())) << t << ": " << id.status();
    if (!id.ok() && !signature.empty()) {
      EXPECT_FALSE(absl::StrContains(id.status().message(), signature)) << id.status();
    }
  }
  // No key (or one of the wrong size) verifies nothing.
  EXPECT_TRUE(absl::IsUnauthenticated(VerifyMemberToken("", token).status()));
  EXPECT_TRUE(absl::IsUnauthenticated(VerifyMemberToken("short", token).status()));
}

TEST(MemberTokenTest, IssuingChecksTheIdTheRoleAndTheKey) {
  const MemberKeyPair keys = Keys();
  EXPECT_TRUE(absl::IsInvalidArgument(
      IssueMemberToken(keys.secret_key, "a:b", MemberRole::kWorker).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      IssueMemberToken(keys.secret_key, "", MemberRole::kWorker).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      IssueMemberToken(keys.public_key, "home", MemberRole::kWorker).status()));
  EXPECT_EQ(*ParseRole("worker"), MemberRole::kWorker);
  EXPECT_EQ(*ParseRole("aggregator"), MemberRole::kAggregator);
  for (const char* bad : {"", "Worker", "hq", "workers", "aggregator "}) {
    EXPECT_TRUE(absl::IsInvalidArgument(ParseRole(bad).status())) << bad;
  }
}

std::string TempPath(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  return absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/hips-member-token-", getpid(), "-", name);
}

TEST(MemberTokenTest, KeyFilesRoundTripAndBadOnesAreNamed) {
  const std::string path = TempPath("key");
  const MemberKeyPair keys = Keys();
  ASSERT_TRUE(WriteMemberKeyFiles(path, keys).ok());
  struct stat st;
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);  // the secret half: owner-only
  absl::StatusOr<std::string> secret = ReadMemberSecretKeyFile(path);
  ASSERT_TRUE(secret.ok()) << secret.status();
  EXPECT_EQ(*secret, keys.secret_key);
  absl::StatusOr<std::string> pub = ReadMemberPublicKeyFile(path + ".pub");
  ASSERT_TRUE(pub.ok()) << pub.status();
  EXPECT_EQ(*pub, keys.public_key);

  // The halves swapped, a missing file, a token file, garbage, a readable
  // secret key: each refused naming the file.
  EXPECT_TRUE(absl::IsInvalidArgument(ReadMemberPublicKeyFile(path).status()));
  chmod((path + ".pub").c_str(), 0600);
  EXPECT_TRUE(absl::IsInvalidArgument(ReadMemberSecretKeyFile(path + ".pub").status()));
  EXPECT_TRUE(absl::IsInvalidArgument(ReadMemberPublicKeyFile(path + ".none").status()));
  const std::string garbage = TempPath("garbage");
  std::ofstream(garbage) << "hips-member-key-1:public:" << absl::WebSafeBase64Escape("short")
                         << "\n";
  absl::Status s = ReadMemberPublicKeyFile(garbage).status();
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_TRUE(absl::StrContains(s.message(), garbage)) << s;
  chmod(path.c_str(), 0644);
  EXPECT_TRUE(absl::IsInvalidArgument(ReadMemberSecretKeyFile(path).status()));
  for (const std::string& p : {path, path + ".pub", garbage}) unlink(p.c_str());
}

}  // namespace
}  // namespace hips
