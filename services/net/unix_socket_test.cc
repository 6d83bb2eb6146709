#include <grpcpp/grpcpp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "hips/v1/hips.grpc.pb.h"
#include "services/net/grpc_util.h"

namespace hips {
namespace {

class StatusOnlyHq final : public v1::Hq::Service {
  grpc::Status GetStatus(grpc::ServerContext*, const v1::StatusRequest*,
                         v1::StatusReply* reply) override {
    reply->set_version(42);
    return grpc::Status::OK;
  }
};

std::string TempPath(const std::string& name) {
  return absl::StrCat(::testing::TempDir(), "/", name, "-", getpid());
}

// Leaves a socket file at `path` with nobody listening (a crashed server's).
void MakeStaleSocket(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  close(fd);
}

TEST(UnixSocketTest, ServesOnASocketAndReplacesAStaleOne) {
  const std::string path = TempPath("hq.sock");
  unlink(path.c_str());
  for (int run = 0; run < 2; ++run) {
    MakeStaleSocket(path);
    StatusOnlyHq hq;
    grpc::ServerBuilder builder;
    ConfigureHipsServer(&builder);
    ASSERT_TRUE(AddUnixListener(&builder, path, grpc::InsecureServerCredentials()).ok());
    builder.RegisterService(&hq);
    std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
    ASSERT_NE(server, nullptr);
    auto stub = v1::Hq::NewStub(CreateHipsChannel(absl::StrCat("unix:", path)));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::StatusReply reply;
    ASSERT_TRUE(stub->GetStatus(&ctx, v1::StatusRequest(), &reply).ok()) << "run " << run;
    EXPECT_EQ(reply.version(), 42);
    server->Shutdown();
  }
  unlink(path.c_str());
}

TEST(UnixSocketTest, RefusesPathsThatCannotBeASocket) {
  grpc::ServerBuilder builder;
  EXPECT_TRUE(
      absl::IsInvalidArgument(AddUnixListener(&builder, "", grpc::InsecureServerCredentials())));
  EXPECT_TRUE(absl::IsInvalidArgument(AddUnixListener(&builder, "/tmp/" + std::string(200, 'x'),
                                                      grpc::InsecureServerCredentials())));
  const std::string file = TempPath("not-a-socket");
  std::ofstream(file) << "data";
  EXPECT_TRUE(
      absl::IsInvalidArgument(AddUnixListener(&builder, file, grpc::InsecureServerCredentials())));
  std::ifstream still(file);
  std::string content;
  still >> content;
  EXPECT_EQ(content, "data");  // never removed
  unlink(file.c_str());
}

}  // namespace
}  // namespace hips
