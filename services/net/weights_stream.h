#ifndef HIPS_SERVICES_NET_WEIGHTS_STREAM_H_
#define HIPS_SERVICES_NET_WEIGHTS_STREAM_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "services/core/payloads.h"
#include "services/core/weights_board.h"
#include "services/metrics/rpc_metrics.h"
#include "services/net/call_registry.h"
#include "services/net/raw_chunks.h"
#include "services/net/stream_guard.h"

// The PullWeights stream, shared by both tiers that serve it (HQ and
// aggregator) and both that call it (aggregator and worker).

namespace hips {

// A snapshot as chunk messages: its header serialized once, and slices that
// point into its weights (they keep the snapshot alive), so a snapshot fanned
// out to many callers is encoded once and never copied.
ChunkedPayload EncodeWeights(std::shared_ptr<const WeightsSnapshot> snapshot, size_t chunk_bytes);

// Holds the encoding of the newest snapshot a server streams. Thread-safe.
class WeightsEncodingCache {
 public:
  explicit WeightsEncodingCache(size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}
  std::shared_ptr<const ChunkedPayload> Get(const std::shared_ptr<const WeightsSnapshot>& snapshot);

 private:
  const size_t chunk_bytes_;
  absl::Mutex mu_;
  const WeightsSnapshot* snapshot_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<const ChunkedPayload> encoded_ ABSL_GUARDED_BY(mu_);
};

// The server side of PullWeights (callback API), for both tiers: a long
// poll on `board` that ends at the caller's deadline (no later than
// `max_long_poll`) or, with the request's no_wait, at once; then the
// snapshot's messages, one write at a time, from `cache`. No thread waits
// meanwhile. A call whose credentials were refused (`admitted` not OK), or
// whose requester `identity` refuses, is answered with the refusal at once.
// `slot` is held until the call is done (the server's stream count).
// `board`, `cache` and `metrics` (may be null) must outlive the server.
grpc::ServerWriteReactor<grpc::ByteBuffer>* ServePullWeights(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request, const WeightsBoard& board,
    WeightsEncodingCache* cache, absl::Duration max_long_poll, RpcMetrics* metrics,
    const absl::Status& admitted = absl::OkStatus(),
    const std::function<absl::Status(const std::string& requester)>& identity = nullptr,
    StreamGuard::Slot slot = {});

// Calls PullWeights (`method` through `stub`: hips.v1.Hq or
// hips.v1.Aggregator) as a long poll that ends at `deadline` (or, with
// `no_wait`, answers at once; or at once when the server's weights are of
// another HQ incarnation than `incarnation`, 0 meaning none yet), presenting
// `token`, registered with `calls` for cancellation. Checks the layout and sizes; a malformed
// stream is refused with INVALID_ARGUMENT (the call is cancelled, not left
// to run into its deadline).
absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeightsFrom(
    grpc::GenericStub* stub, const std::string& method, CallRegistry* calls,
    const std::string& token, const std::string& requester, int64_t min_version,
    absl::Time deadline, bool no_wait = false, int64_t incarnation = 0);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_WEIGHTS_STREAM_H_
