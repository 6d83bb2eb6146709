#ifndef HIPS_SERVICES_NET_WEIGHTS_STREAM_H_
#define HIPS_SERVICES_NET_WEIGHTS_STREAM_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/sync_stream.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "hips/v1/hips.pb.h"
#include "services/core/payloads.h"
#include "services/net/call_registry.h"

// The PullWeights stream, shared by both tiers that serve it (HQ and
// aggregator) and both that call it (aggregator and worker).

namespace hips {

// A snapshot as chunk messages: its header serialized once, and slices that
// point into its weights (they keep the snapshot alive), so a snapshot fanned
// out to many callers is encoded once and never copied.
struct EncodedWeights {
  std::string header;
  std::vector<grpc::Slice> chunks;
};

EncodedWeights EncodeWeights(std::shared_ptr<const WeightsSnapshot> snapshot, size_t chunk_bytes);

// Holds the encoding of the newest snapshot a server streams. Thread-safe.
class WeightsEncodingCache {
 public:
  explicit WeightsEncodingCache(size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}
  std::shared_ptr<const EncodedWeights> Get(const std::shared_ptr<const WeightsSnapshot>& snapshot);

 private:
  const size_t chunk_bytes_;
  absl::Mutex mu_;
  const WeightsSnapshot* snapshot_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<const EncodedWeights> encoded_ ABSL_GUARDED_BY(mu_);
};

// Server side: streams an encoded snapshot.
bool WriteWeights(grpc::ServerWriter<grpc::ByteBuffer>* writer, const EncodedWeights& weights);

// Client side: reads a whole snapshot, checking the layout and sizes. A
// malformed stream cancels the call (`ctx`) and returns why.
absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> ReadWeights(
    grpc::ClientContext* ctx, grpc::ClientReader<grpc::ByteBuffer>* reader);

// Calls PullWeights (`method` of `channel`: hips.v1.Hq or hips.v1.Aggregator)
// as a long poll that ends at `deadline` (or, with `no_wait`, answers at
// once; or at once when the server's weights are of another HQ incarnation
// than `incarnation`, 0 meaning none yet), registered with `calls` for
// cancellation.
absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeightsFrom(
    grpc::ChannelInterface* channel, const grpc::internal::RpcMethod& method, CallRegistry* calls,
    const std::string& requester, int64_t min_version, absl::Time deadline, bool no_wait = false,
    int64_t incarnation = 0);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_WEIGHTS_STREAM_H_
