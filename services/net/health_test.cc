#include "services/net/health.h"

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace hips {
namespace {

// A server with only the health service, on a free loopback port.
class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    health_ = std::make_unique<HealthService>(std::vector<std::string>{"hips.v1.Aggregator"},
                                              [this] { return ready_.load(); });
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(health_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(server_, nullptr);
    address_ = absl::StrCat("127.0.0.1:", port_);
  }
  void TearDown() override { server_->Shutdown(); }

  absl::StatusOr<Health> Ask(const std::string& service = "") {
    return CheckHealth(address_, service, ClientCredentials(), absl::Seconds(5));
  }

  std::atomic<bool> ready_{false};
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::string address_;
};

TEST_F(HealthTest, AnswersWhatReadySaysAtEachCallUntilShutdown) {
  ASSERT_TRUE(Ask().ok());
  EXPECT_EQ(*Ask(), Health::kNotServing);
  ready_.store(true);
  EXPECT_EQ(*Ask(), Health::kServing);
  EXPECT_EQ(*Ask("hips.v1.Aggregator"), Health::kServing);
  ready_.store(false);
  EXPECT_EQ(*Ask("hips.v1.Aggregator"), Health::kNotServing);
  ready_.store(true);
  health_->Shutdown();
  EXPECT_EQ(*Ask(), Health::kNotServing);
}

TEST_F(HealthTest, AnUnknownServiceIsNotFound) {
  absl::StatusOr<Health> h = Ask("hips.v1.Hq");
  ASSERT_FALSE(h.ok());
  EXPECT_TRUE(absl::IsNotFound(h.status())) << h.status();
  EXPECT_TRUE(absl::StrContains(h.status().message(), "hips.v1.Hq")) << h.status();
}

TEST_F(HealthTest, NobodyListeningIsAnErrorNotAnAnswer) {
  server_->Shutdown();
  absl::StatusOr<Health> h = Ask();
  EXPECT_FALSE(h.ok());
  EXPECT_TRUE(absl::IsUnavailable(h.status())) << h.status();
}

TEST(HealthNameTest, NamesEachAnswer) {
  EXPECT_STREQ(HealthName(Health::kServing), "SERVING");
  EXPECT_STREQ(HealthName(Health::kNotServing), "NOT_SERVING");
  EXPECT_STREQ(HealthName(Health::kUnknown), "UNKNOWN");
}

}  // namespace
}  // namespace hips
