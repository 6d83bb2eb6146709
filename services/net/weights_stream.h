#ifndef HIPS_SERVICES_NET_WEIGHTS_STREAM_H_
#define HIPS_SERVICES_NET_WEIGHTS_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "hips/v1/hips.pb.h"
#include "services/core/payloads.h"
#include "services/net/call_registry.h"

// The PullWeights stream, shared by both tiers that serve it (HQ and
// aggregator) and both that call it (aggregator and worker).

namespace hips {

// Server side: streams `snapshot` as a header plus chunks.
bool WriteWeights(grpc::ServerWriter<v1::WeightsChunk>* writer, const WeightsSnapshot& snapshot,
                  size_t chunk_bytes);

// Client side: reads a whole snapshot, checking the layout and sizes. A
// malformed stream cancels the call (`ctx`) and returns why.
absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> ReadWeights(
    grpc::ClientContext* ctx, grpc::ClientReader<v1::WeightsChunk>* reader);

// Calls PullWeights on `stub` (hips.v1.Hq or hips.v1.Aggregator) as a long
// poll that ends at `deadline` (or, with `no_wait`, answers at once; or at
// once when the server's weights are of another HQ incarnation than
// `incarnation`, 0 meaning none yet),
// registered with `calls` for cancellation.
template <typename Stub>
absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeightsFrom(
    Stub* stub, CallRegistry* calls, const std::string& requester, int64_t min_version,
    absl::Time deadline, bool no_wait = false, int64_t incarnation = 0);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_WEIGHTS_STREAM_H_
