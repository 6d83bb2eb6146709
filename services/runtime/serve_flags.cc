#include "services/runtime/serve_flags.h"

#include "absl/flags/flag.h"
#include "services/runtime/daemon_flags.h"
#include "services/runtime/security_flags.h"

ABSL_FLAG(std::string, host, "127.0.0.1", "Address to listen on.");
ABSL_FLAG(int, port, 0, "Port to listen on; 0 picks a free one (see --port_file).");
ABSL_FLAG(std::string, port_file, "", "If set, the chosen port is written here once listening.");
ABSL_FLAG(std::string, unix_socket, "",
          "Also listen on this Unix socket; peers on this host connect to unix:PATH.");
ABSL_FLAG(int, max_streams, 0,
          "Streaming calls (pushes, weight pulls) served at once; more are refused with "
          "RESOURCE_EXHAUSTED (0: four per member this server may have, plus 8).");
ABSL_FLAG(int, max_streams_per_member, 4,
          "Streaming calls one member (its member token's id, or its certificate's name) may "
          "hold open here at once; more are refused with RESOURCE_EXHAUSTED (0: no limit of "
          "its own).");
ABSL_FLAG(int64_t, stream_idle_ms, 30000,
          "A push stream that delivers no chunk for this long is cancelled and its partial data "
          "dropped (0: never). Only the upload is watched, not the wait for its answer.");
ABSL_FLAG(int, sum_threads, 2,
          "Threads that sum a tensor of 4M floats or more (docs/performance.md).");
ABSL_FLAG(int, quorum, 0,
          "sync: contributions that suffice to close a round at its deadline: an aggregator's "
          "workers, HQ's aggregators (0: all of them).");
ABSL_FLAG(int64_t, max_batch_samples, 1 << 16,
          "The most samples one worker gradient may stand for: an aggregator refuses a push "
          "claiming more, HQ an aggregate of n gradients claiming more than n times this.");
ABSL_FLAG(int, max_workers, 0,
          "The most workers: an aggregator lets at most this many live at once, refusing more "
          "with RESOURCE_EXHAUSTED (0: twice --min_homes, at least 1024: room for a failed "
          "peer's and for homes that join); HQ refuses "
          "an aggregate listing more contributors (0: the protocol's bound, 65536).");

namespace hips {

ServeOptions ServeOptionsFromFlags() {
  ServeOptions o;
  o.host = absl::GetFlag(FLAGS_host);
  o.port = absl::GetFlag(FLAGS_port);
  o.port_file = absl::GetFlag(FLAGS_port_file);
  o.unix_socket = absl::GetFlag(FLAGS_unix_socket);
  o.security = SecurityOptionsFromFlagsOrExit();
  o.limits.max_streams = absl::GetFlag(FLAGS_max_streams);
  o.limits.max_streams_per_member = absl::GetFlag(FLAGS_max_streams_per_member);
  const int64_t idle_ms = absl::GetFlag(FLAGS_stream_idle_ms);
  o.limits.stream_idle = idle_ms == 0 ? absl::InfiniteDuration() : absl::Milliseconds(idle_ms);
  SetMetricsFromFlags(&o);
  return o;
}

}  // namespace hips
