#ifndef HIPS_SERVICES_NET_GRPC_UTIL_H_
#define HIPS_SERVICES_NET_GRPC_UTIL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "services/net/security.h"

namespace hips {

// Per-message limit on every hips channel and server, both directions. gRPC's
// default receive limit (4 MiB) is below what a 4 MiB chunk plus framing
// needs, so hips always sets it: the largest chunk (64 MiB) plus headroom for
// the header and layout.
inline constexpr int kMaxMessageBytes = (64 << 20) + (1 << 20);

// A channel to `address` with hips's message limits, secured as
// `credentials` say (plaintext by default).
std::shared_ptr<grpc::Channel> CreateHipsChannel(const std::string& address,
                                                 const ClientCredentials& credentials = {});

// Applies hips's message limits to a server under construction.
void ConfigureHipsServer(grpc::ServerBuilder* builder);

// Also listens on the Unix socket `path` (peers on the same host connect to
// "unix:<path>": docs/performance.md) with `credentials`. A stale socket
// file there is removed first; INVALID_ARGUMENT for a path too long for a
// socket address or a file there that is not a socket.
absl::Status AddUnixListener(grpc::ServerBuilder* builder, const std::string& path,
                             std::shared_ptr<grpc::ServerCredentials> credentials);

// When a server-side long poll must end: the caller's deadline, but no later
// than `cap` from now (a caller without a deadline gets `cap`).
absl::Time LongPollDeadline(const grpc::ServerContextBase& ctx, absl::Duration cap);

grpc::Status ToGrpcStatus(const absl::Status& status);
// Finishes a callback unary call with `status` (its reply already written).
grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* ctx, const grpc::Status& status);
absl::Status FromGrpcStatus(const grpc::Status& status);

// Writes `port` followed by a newline to `path` atomically (write to a
// temporary file, then rename), so a reader never sees a partial file.
absl::Status WritePortFile(const std::string& path, int port);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_GRPC_UTIL_H_
