#ifndef HIPS_SERVICES_RUNTIME_SERVE_FLAGS_H_
#define HIPS_SERVICES_RUNTIME_SERVE_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "services/net/daemon_server.h"

// The flags of the servers (hips-hq, hips-aggregator): where they listen
// (--host, --port, --port_file, --unix_socket), how much they serve at once
// (--max_streams, --stream_idle_ms; docs/security.md, "Limits"), the
// threads that sum (--sum_threads), and what a tier takes from its members
// (--quorum, --max_batch_samples, --max_workers). Only main()s link this.
ABSL_DECLARE_FLAG(int, sum_threads);
ABSL_DECLARE_FLAG(int, quorum);
ABSL_DECLARE_FLAG(int64_t, max_batch_samples);
ABSL_DECLARE_FLAG(int, max_workers);

namespace hips {

// These flags, the security flags (files read) and the metrics flags, as
// the server options; unchecked (CheckServeOptions, at start).
ServeOptions ServeOptionsFromFlags();

}  // namespace hips

#endif  // HIPS_SERVICES_RUNTIME_SERVE_FLAGS_H_
