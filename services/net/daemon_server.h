#ifndef HIPS_SERVICES_NET_DAEMON_SERVER_H_
#define HIPS_SERVICES_NET_DAEMON_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "services/metrics/metrics_server.h"
#include "services/metrics/rpc_metrics.h"
#include "services/net/health.h"
#include "services/net/security.h"
#include "services/net/server_gate.h"

namespace hips {

// Where and how a daemon serves: what every hips daemon takes the same way
// (services/runtime/serve_flags.h).
struct ServeOptions {
  // gRPC on host:port (0: a free one), written to port_file once it
  // listens; also on a Unix socket (peers on this host dial unix:PATH). A
  // worker serves only health, on metrics_address (port -1: none).
  std::string host = "127.0.0.1";
  int port = 0;
  std::string port_file;
  // The flag that sets `port`, for messages ("--port", "--health_port").
  std::string port_flag = "--port";
  std::string unix_socket;
  // Serves the health service only (a worker): no credentials needed.
  bool health_only = false;
  // TLS and the tokens its callers present (docs/security.md), and how much
  // it serves at once.
  SecurityOptions security;
  ServeLimits limits;
  // /metrics over HTTP (unauthenticated: loopback by default): this port, 0
  // a free one, -1 none; written to metrics_port_file.
  std::string metrics_address = "127.0.0.1";
  int metrics_port = -1;
  std::string metrics_port_file;
};

// INVALID_ARGUMENT for a port out of range, a server that would listen in
// plaintext off loopback or that nobody could authenticate to
// (`needs_admin`: HQ's admin calls need their own credentials too), bad
// limits. With `grpc_optional` (a worker: health only) the gRPC port may be
// -1, none.
absl::Status CheckServeOptions(const ServeOptions& options, bool needs_admin,
                               bool grpc_optional = false);

// A daemon's serving side, written once for the three daemons: the metrics
// endpoint, started first so that the daemon registers its collectors as it
// builds its logic, then one gRPC server with the daemon's services and the
// standard health service (grpc.health.v1), on TCP and the Unix socket,
// every call checked by the Authorizer of its security options. Serve
// writes the port files: the metrics port last, once the daemon is up
// (a supervisor reads it as "came up once"). Thread-safe.
class DaemonServer {
 public:
  // Reads the credentials (INVALID_ARGUMENT if one cannot be read; none
  // without a gRPC port) and starts the metrics endpoint, if any.
  static absl::StatusOr<std::unique_ptr<DaemonServer>> Create(ServeOptions options,
                                                              bool needs_admin);
  ~DaemonServer();

  const ServeOptions& options() const { return options_; }
  // What the daemon's services check every call with.
  const Authorizer* authorizer() const { return authorizer_.get(); }
  // Null without a metrics endpoint.
  MetricsServer* metrics() const { return metrics_.get(); }
  RpcMetrics* rpc_metrics() const { return rpc_metrics_.get(); }
  // The stream limits of a server whose peers are at most `members`
  // (--max_streams, or four streams per member plus 8).
  ServeLimits LimitsFor(int members) const;

  // Serves `services` and the health service, which answers SERVING for ""
  // and `health_names` while `serving()` holds and Shutdown has not begun
  // (nothing over gRPC without a gRPC port). UNAVAILABLE when it cannot
  // listen.
  absl::Status Serve(const std::vector<grpc::Service*>& services,
                     std::vector<std::string> health_names, std::function<bool()> serving);
  int port() const { return port_; }
  int metrics_port() const { return metrics_ == nullptr ? -1 : metrics_->port(); }

  // Health NOT_SERVING from now on (the daemon is about to stop its logic,
  // so that in-flight long polls return). Idempotent.
  void BeginShutdown();
  // BeginShutdown, then the server stops taking calls; calls in flight get
  // `grace`. Idempotent.
  void Shutdown(absl::Duration grace = absl::Seconds(2));
  // Blocks until Shutdown began (a daemon's Run that only serves).
  void WaitUntilShutdown() { stopping_.WaitForNotification(); }

 private:
  DaemonServer(ServeOptions options, std::shared_ptr<grpc::ServerCredentials> credentials);
  absl::Status ServeGrpc(const std::vector<grpc::Service*>& services,
                         std::vector<std::string> health_names, std::function<bool()> serving);

  const ServeOptions options_;
  const std::shared_ptr<grpc::ServerCredentials> credentials_;
  std::unique_ptr<Authorizer> authorizer_;
  std::unique_ptr<MetricsServer> metrics_;
  std::unique_ptr<RpcMetrics> rpc_metrics_;
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = -1;
  absl::Notification stopping_;
  std::once_flag begin_once_;
  std::once_flag shutdown_once_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_NET_DAEMON_SERVER_H_
