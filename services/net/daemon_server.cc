#include "services/net/daemon_server.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/net/address.h"
#include "services/net/grpc_util.h"

namespace hips {

absl::Status CheckServeOptions(const ServeOptions& o, bool needs_admin, bool grpc_optional) {
  if (absl::Status s = CheckListenPort(o.port_flag, o.port, grpc_optional); !s.ok()) return s;
  if (absl::Status s = CheckListenPort("--metrics_port", o.metrics_port, true); !s.ok()) return s;
  if (o.limits.max_streams < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--max_streams must be >= 0, got ", o.limits.max_streams));
  }
  if (o.limits.max_streams_per_member < 0 || o.limits.max_streams_per_member > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--max_streams_per_member must be in [0, 1000], got ", o.limits.max_streams_per_member));
  }
  if (o.limits.stream_idle <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--stream_idle_ms must be >= 0");
  }
  if (o.port < 0) return absl::OkStatus();
  return CheckServerSecurity(o.host, o.security, needs_admin, o.health_only);
}

absl::StatusOr<std::unique_ptr<DaemonServer>> DaemonServer::Create(ServeOptions options,
                                                                   bool needs_admin) {
  std::shared_ptr<grpc::ServerCredentials> credentials;
  if (options.port >= 0) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> served =
        ServingCredentials(options.host, options.security, needs_admin, options.health_only);
    if (!served.ok()) return served.status();
    credentials = *std::move(served);
  }
  std::unique_ptr<DaemonServer> d(new DaemonServer(std::move(options), std::move(credentials)));
  if (d->options_.metrics_port >= 0) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> metrics =
        MetricsServer::Start(d->options_.metrics_address, d->options_.metrics_port);
    if (!metrics.ok()) return metrics.status();
    d->metrics_ = *std::move(metrics);
    d->rpc_metrics_ = std::make_unique<RpcMetrics>(&d->metrics_->registry());
    LOG(INFO) << "metrics on http://" << d->options_.metrics_address << ":" << d->metrics_->port()
              << "/metrics";
  }
  return d;
}

DaemonServer::DaemonServer(ServeOptions options,
                           std::shared_ptr<grpc::ServerCredentials> credentials)
    : options_(std::move(options)),
      credentials_(std::move(credentials)),
      authorizer_(std::make_unique<Authorizer>(options_.security)) {}

DaemonServer::~DaemonServer() { Shutdown(); }

ServeLimits DaemonServer::LimitsFor(int members) const {
  ServeLimits limits = options_.limits;
  if (limits.max_streams == 0) limits.max_streams = 4 * members + 8;
  return limits;
}

absl::Status DaemonServer::Serve(const std::vector<grpc::Service*>& services,
                                 std::vector<std::string> health_names,
                                 std::function<bool()> serving) {
  if (options_.port >= 0) {
    if (absl::Status s = ServeGrpc(services, std::move(health_names), std::move(serving));
        !s.ok()) {
      return s;
    }
  }
  // Written last: a supervisor takes the file for "it came up" (hips local
  // restarts only a child that once did).
  if (metrics_ != nullptr) return WritePortFile(options_.metrics_port_file, metrics_->port());
  return absl::OkStatus();
}

absl::Status DaemonServer::ServeGrpc(const std::vector<grpc::Service*>& services,
                                     std::vector<std::string> health_names,
                                     std::function<bool()> serving) {
  grpc::ServerBuilder builder;
  ConfigureHipsServer(&builder);
  builder.AddListeningPort(absl::StrCat(options_.host, ":", options_.port), credentials_, &port_);
  if (!options_.unix_socket.empty()) {
    if (absl::Status s = AddUnixListener(&builder, options_.unix_socket, credentials_); !s.ok()) {
      return s;
    }
  }
  for (grpc::Service* service : services) builder.RegisterService(service);
  health_ = std::make_unique<HealthService>(std::move(health_names), std::move(serving));
  builder.RegisterService(health_.get());
  server_ = builder.BuildAndStart();
  if (server_ == nullptr || port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options_.host, ":",
                                               options_.port, " (", options_.port_flag, ")"));
  }
  return WritePortFile(options_.port_file, port_);
}

void DaemonServer::BeginShutdown() {
  std::call_once(begin_once_, [this] {
    if (health_ != nullptr) health_->Shutdown();
    stopping_.Notify();
  });
}

void DaemonServer::Shutdown(absl::Duration grace) {
  BeginShutdown();
  std::call_once(shutdown_once_, [this, grace] {
    if (server_ != nullptr) {
      server_->Shutdown(std::chrono::system_clock::now() + absl::ToChronoMilliseconds(grace));
    }
  });
}

}  // namespace hips
