#include "services/metrics/metrics_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "prometheus/text_serializer.h"

namespace hips {

prometheus::ClientMetric& MetricFamilies::Add(absl::string_view name, absl::string_view help,
                                              prometheus::MetricType type, const Labels& labels) {
  prometheus::MetricFamily* family = nullptr;
  for (prometheus::MetricFamily& f : families_) {
    if (f.name == name) family = &f;
  }
  if (family == nullptr) {
    family = &families_.emplace_back();
    family->name = std::string(name);
    family->help = std::string(help);
    family->type = type;
  }
  prometheus::ClientMetric& metric = family->metric.emplace_back();
  for (const auto& [key, value] : labels) metric.label.push_back({key, value});
  return metric;
}

void MetricFamilies::Counter(absl::string_view name, absl::string_view help, double value,
                             const Labels& labels) {
  Add(name, help, prometheus::MetricType::Counter, labels).counter.value = value;
}

void MetricFamilies::Gauge(absl::string_view name, absl::string_view help, double value,
                           const Labels& labels) {
  Add(name, help, prometheus::MetricType::Gauge, labels).gauge.value = value;
}

void MetricFamilies::Counters(absl::string_view name, absl::string_view help,
                              const std::string& label, const std::vector<std::string>& keys,
                              const std::map<std::string, int64_t>& counts) {
  for (const std::string& key : keys) {
    auto it = counts.find(key);
    Counter(name, help, it == counts.end() ? 0 : static_cast<double>(it->second), {{label, key}});
  }
}

void MetricFamilies::Histogram(absl::string_view name, absl::string_view help,
                               const std::vector<double>& upper_bounds,
                               const std::vector<int64_t>& counts, int64_t overflow, double sum) {
  prometheus::ClientMetric& m = Add(name, help, prometheus::MetricType::Histogram, {});
  uint64_t cumulative = 0;
  for (size_t i = 0; i < upper_bounds.size() && i < counts.size(); ++i) {
    cumulative += static_cast<uint64_t>(counts[i]);
    m.histogram.bucket.push_back({cumulative, upper_bounds[i]});
  }
  cumulative += static_cast<uint64_t>(overflow);
  m.histogram.bucket.push_back({cumulative, std::numeric_limits<double>::infinity()});
  m.histogram.sample_count = cumulative;
  m.histogram.sample_sum = sum;
}

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(const std::string& host,
                                                                    int port) {
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("metrics port ", port, " out of range"));
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics host ", host, " is not an IPv4 address"));
  }
  std::unique_ptr<MetricsServer> s(new MetricsServer);
  s->listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const int one = 1;
  setsockopt(s->listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (s->listen_fd_ < 0 ||
      bind(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(s->listen_fd_, 16) != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", host, ":", port, ": ", strerror(errno)));
  }
  socklen_t len = sizeof(addr);
  getsockname(s->listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  s->port_ = ntohs(addr.sin_port);
  if (pipe2(s->wake_fd_, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  s->registry_ = std::make_shared<prometheus::Registry>();
  MetricsServer* raw = s.get();
  s->thread_ = std::thread([raw] { raw->Serve(); });
  return s;
}

MetricsServer::~MetricsServer() {
  if (thread_.joinable()) {
    (void)!write(wake_fd_[1], "x", 1);
    thread_.join();
  }
  for (int fd : {listen_fd_, wake_fd_[0], wake_fd_[1]}) {
    if (fd >= 0) close(fd);
  }
}

void MetricsServer::AddCollector(std::function<void(MetricFamilies*)> collect) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collect));
}

std::string MetricsServer::Scrape() const {
  std::vector<prometheus::MetricFamily> families = registry_->Collect();
  {
    absl::MutexLock lock(&mu_);
    for (const auto& collect : collectors_) {
      MetricFamilies collected;
      collect(&collected);
      for (prometheus::MetricFamily& f : collected.Take()) families.push_back(std::move(f));
    }
  }
  return prometheus::TextSerializer().Serialize(families);
}

namespace {

void WriteAll(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = send(fd, data.data() + done, data.size() - done, MSG_NOSIGNAL);
    if (n <= 0) return;  // the scraper went away
    done += static_cast<size_t>(n);
  }
}

std::string Response(const char* status, const char* type, const std::string& body) {
  return absl::StrCat("HTTP/1.1 ", status, "\r\nContent-Type: ", type,
                      "\r\nContent-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
}

}  // namespace

MetricsRoute RouteMetricsRequest(absl::string_view request) {
  const absl::string_view line = request.substr(0, request.find("\r\n"));
  if (absl::StartsWith(line, "GET /metrics ") || absl::StartsWith(line, "GET /metrics?")) {
    return MetricsRoute::kMetrics;
  }
  if (absl::StartsWith(line, "GET / ")) return MetricsRoute::kIndex;
  if (absl::StartsWith(line, "GET ")) return MetricsRoute::kNotFound;
  return MetricsRoute::kBadRequest;
}

void MetricsServer::Serve() {
  while (true) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_fd_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (fds[1].revents != 0) return;  // the destructor
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // One request per connection; a client that sends nothing for a second
    // is dropped, so a stuck scraper cannot hold the thread.
    timeval timeout{1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout));
    std::string request;
    char buf[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
      const ssize_t n = recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) break;
      request.append(buf, static_cast<size_t>(n));
    }
    switch (RouteMetricsRequest(request)) {
      case MetricsRoute::kMetrics:
        WriteAll(fd, Response("200 OK", "text/plain; version=0.0.4; charset=utf-8", Scrape()));
        break;
      case MetricsRoute::kIndex:
        WriteAll(fd, Response("200 OK", "text/plain", "hips: metrics at /metrics\n"));
        break;
      case MetricsRoute::kNotFound:
        WriteAll(fd, Response("404 Not Found", "text/plain", "not found; try /metrics\n"));
        break;
      case MetricsRoute::kBadRequest:
        WriteAll(fd, Response("400 Bad Request", "text/plain", "only GET is served\n"));
        break;
    }
    close(fd);
  }
}

const std::vector<double>& LatencyBuckets() {
  static const std::vector<double>* const kBuckets =
      new std::vector<double>{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                              0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
  return *kBuckets;
}

}  // namespace hips
