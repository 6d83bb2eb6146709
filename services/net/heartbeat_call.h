#ifndef HIPS_SERVICES_NET_HEARTBEAT_CALL_H_
#define HIPS_SERVICES_NET_HEARTBEAT_CALL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/net/call_registry.h"
#include "services/types/payloads.h"

namespace hips {

// Calls Heartbeat on `stub` (hips.v1.Hq or hips.v1.Aggregator), failing
// fast when the peer is unreachable (a heartbeat that waited for a
// connection would hide that), presenting `token`, registered with `calls`
// for cancellation.
template <typename Stub>
absl::StatusOr<HeartbeatAnswer> CallHeartbeat(Stub* stub, CallRegistry* calls,
                                              const std::string& token,
                                              const HeartbeatRequestData& heartbeat,
                                              absl::Time deadline);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_HEARTBEAT_CALL_H_
