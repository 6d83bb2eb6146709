#include "services/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/metrics/rpc_metrics.h"

namespace hips {
namespace {

using ::testing::HasSubstr;

// GET /metrics over a plain socket (no HTTP client library needed).
std::string Scrape(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return "";
  }
  const std::string request =
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  std::string response;
  char buf[4096];
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) response.append(buf, n);
  close(fd);
  return response;
}

TEST(MetricsServerTest, ServesCollectedFamiliesAndRegistryMetricsOnAFreePort) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  ASSERT_GT((*server)->port(), 0);
  int scrapes = 0;
  (*server)->AddCollector([&scrapes](MetricFamilies* f) {
    ++scrapes;
    f->Counter("hips_gradients_dropped_total", "Dropped gradients, by reason", 3,
               {{"reason", "stale_version"}});
    f->Counter("hips_gradients_dropped_total", "Dropped gradients, by reason", 2,
               {{"reason", "round_closed"}});
    f->Gauge("hips_version", "Newest version", 42);
    // 5 at staleness 0, 2 at 1, 1 beyond the last bound: sum 0 + 2 + 7.
    f->Histogram("hips_gradient_staleness_versions", "Staleness", {0, 1}, {5, 2}, 1, 9);
  });
  RpcMetrics rpc(&(*server)->registry());
  rpc.Observe("PushGradient", absl::Milliseconds(3), 4000, 0);
  rpc.Observe("PushGradient", absl::Milliseconds(30), 4000, 0);

  const std::string text = Scrape((*server)->port());
  EXPECT_THAT(text, HasSubstr("200 OK"));
  EXPECT_THAT(text, HasSubstr("# TYPE hips_gradients_dropped_total counter"));
  EXPECT_THAT(text, HasSubstr("hips_gradients_dropped_total{reason=\"stale_version\"} 3"));
  EXPECT_THAT(text, HasSubstr("hips_gradients_dropped_total{reason=\"round_closed\"} 2"));
  EXPECT_THAT(text, HasSubstr("hips_version 42"));
  EXPECT_THAT(text, HasSubstr("hips_gradient_staleness_versions_bucket{le=\"0\"} 5"));
  EXPECT_THAT(text, HasSubstr("hips_gradient_staleness_versions_bucket{le=\"1\"} 7"));
  EXPECT_THAT(text, HasSubstr("hips_gradient_staleness_versions_bucket{le=\"+Inf\"} 8"));
  EXPECT_THAT(text, HasSubstr("hips_gradient_staleness_versions_sum 9"));
  EXPECT_THAT(text, HasSubstr("hips_received_bytes_total{rpc=\"PushGradient\"} 8000"));
  EXPECT_THAT(text, HasSubstr("hips_rpc_duration_seconds_count{rpc=\"PushGradient\"} 2"));
  EXPECT_THAT(text,
              HasSubstr("hips_rpc_duration_seconds_bucket{rpc=\"PushGradient\",le=\"0.005\"} 1"));
  EXPECT_EQ(scrapes, 1);
}

TEST(MetricsServerTest, AnswersOtherPathsAndMethodsWithErrors) {
  absl::StatusOr<std::unique_ptr<MetricsServer>> server = MetricsServer::Start("127.0.0.1", 0);
  ASSERT_TRUE(server.ok()) << server.status();
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>((*server)->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  const std::string request = "POST /metrics HTTP/1.1\r\n\r\n";
  (void)!write(fd, request.data(), request.size());
  char buf[512];
  const ssize_t n = read(fd, buf, sizeof(buf));
  close(fd);
  ASSERT_GT(n, 0);
  EXPECT_THAT(std::string(buf, n), HasSubstr("400 Bad Request"));
}

TEST(MetricsServerTest, RefusesABadPort) {
  EXPECT_TRUE(absl::IsInvalidArgument(MetricsServer::Start("127.0.0.1", 70000).status()));
}

}  // namespace
}  // namespace hips
