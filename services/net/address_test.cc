#include "services/net/address.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

using ::testing::HasSubstr;

TEST(CheckDialAddressTest, TakesHostPortAndUnixSockets) {
  for (const char* ok : {"127.0.0.1:7000", "hq:7000", "hips-hq-0.hips-hq.ns.svc:7000", "[::1]:1",
                         "[fe80::1]:65535", "unix:/tmp/hq.sock", "my_host:80"}) {
    EXPECT_TRUE(CheckDialAddress("--hq", ok).ok()) << ok;
  }
}

TEST(CheckDialAddressTest, RefusesWhatCannotBeDialled) {
  struct Bad {
    const char* address;
    const char* why;
  };
  for (const Bad& bad :
       {Bad{"", "no port"}, Bad{"hq", "no port"}, Bad{"hq:", "[1, 65535]"},
        Bad{":7000", "not a host"}, Bad{"hq:0", "[1, 65535]"}, Bad{"hq:65536", "[1, 65535]"},
        Bad{"hq:+80", "[1, 65535]"}, Bad{"hq:7000x", "[1, 65535]"}, Bad{"::1:7000", "not a host"},
        Bad{"h q:7000", "not a host"}, Bad{"-hq:7000", "not a host"},
        Bad{"http://hq:7000", "not a host"}, Bad{"unix:", "no socket path"}}) {
    const absl::Status s = CheckDialAddress("--hq", bad.address);
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << bad.address;
    EXPECT_THAT(s.message(), HasSubstr(bad.why)) << bad.address;
    EXPECT_THAT(s.message(), HasSubstr(std::string("--hq=") + bad.address)) << bad.address;
  }
  EXPECT_THAT(CheckDialAddress("hips health", "x").message(), HasSubstr("hips health x: no port"));
}

TEST(CheckListenPortTest, ZeroIsAnyAndMinusOneIsNoneWhereAllowed) {
  EXPECT_TRUE(CheckListenPort("--port", 0, false).ok());
  EXPECT_TRUE(CheckListenPort("--port", 65535, false).ok());
  EXPECT_TRUE(CheckListenPort("--metrics_port", -1, true).ok());
  EXPECT_THAT(CheckListenPort("--port", -1, false).message(), HasSubstr("--port=-1"));
  EXPECT_THAT(CheckListenPort("--metrics_port", -2, true).message(), HasSubstr("or -1 for none"));
  EXPECT_FALSE(CheckListenPort("--port", 65536, false).ok());
}

}  // namespace
}  // namespace hips
