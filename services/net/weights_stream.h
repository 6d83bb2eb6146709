#ifndef HIPS_SERVICES_NET_WEIGHTS_STREAM_H_
#define HIPS_SERVICES_NET_WEIGHTS_STREAM_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "hips/v1/hips.pb.h"
#include "services/core/weights_board.h"
#include "services/metrics/rpc_metrics.h"
#include "services/net/call_registry.h"
#include "services/net/chunk_receiver.h"
#include "services/net/raw_chunks.h"
#include "services/net/stream_guard.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/weights_chain.h"
#include "services/types/payloads.h"

// The PullWeights stream, shared by both tiers that serve it (HQ and
// aggregator) and both that call it (aggregator and worker).

namespace hips {

// A snapshot as chunk messages: its header serialized once, and slices that
// point into its weights (they keep the snapshot alive), so a snapshot fanned
// out to many callers is encoded once and never copied.
ChunkedPayload EncodeWeights(std::shared_ptr<const WeightsSnapshot> snapshot, size_t chunk_bytes);
// A chain step's delta as chunk messages (the header of its weights, with
// the delta's base and encoding), for a caller that holds the base.
// Precondition: !step->resync().
ChunkedPayload EncodeWeightsDelta(std::shared_ptr<const ChainStep> step, size_t chunk_bytes);

// What a PullWeights caller says it holds (its request).
struct HeldWeights {
  bool accepts_delta = false;
  int64_t version = 0;
  int64_t incarnation = 0;
};

// What a server streams to a PullWeights caller, given the newest weights
// on its board and what the caller holds. Thread-safe.
class WeightsEncoder {
 public:
  virtual ~WeightsEncoder() = default;
  virtual std::shared_ptr<const ChunkedPayload> Encode(
      const std::shared_ptr<const WeightsSnapshot>& newest, const HeldWeights& held) = 0;
};

// The weights whole, float32: every caller gets the same encoding of the
// newest snapshot (made once).
class WeightsEncodingCache final : public WeightsEncoder {
 public:
  explicit WeightsEncodingCache(size_t chunk_bytes) : chunk_bytes_(chunk_bytes) {}
  std::shared_ptr<const ChunkedPayload> Get(const std::shared_ptr<const WeightsSnapshot>& snapshot);
  std::shared_ptr<const ChunkedPayload> Encode(const std::shared_ptr<const WeightsSnapshot>& newest,
                                               const HeldWeights&) override {
    return Get(newest);
  }

 private:
  const size_t chunk_bytes_;
  absl::Mutex mu_;
  const WeightsSnapshot* snapshot_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<const ChunkedPayload> encoded_ ABSL_GUARDED_BY(mu_);
};

// HQ's --weights_compression (weights_chain.h): a caller that holds the
// chain's previous step gets the step's compressed delta, any other the
// step's weights whole. Both encodings are made once per step.
class ChainWeightsEncoder final : public WeightsEncoder {
 public:
  ChainWeightsEncoder(WeightsChainOptions options, size_t chunk_bytes)
      : chain_(options), chunk_bytes_(chunk_bytes) {}

  std::shared_ptr<const ChunkedPayload> Encode(const std::shared_ptr<const WeightsSnapshot>& newest,
                                               const HeldWeights& held) override;

  struct Counters {
    int64_t deltas_sent = 0;  // streams that carried a delta
    int64_t whole_sent = 0;   // streams that carried whole weights
    float drift = 0.0f;       // the newest step's max |HQ's weights - the chain's|
    int64_t resyncs = 0;      // steps that were resyncs
  };
  Counters counters() const;

 private:
  WeightsChain chain_;
  const size_t chunk_bytes_;
  mutable absl::Mutex mu_;
  std::shared_ptr<const ChainStep> step_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const ChunkedPayload> whole_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const ChunkedPayload> delta_ ABSL_GUARDED_BY(mu_);
  Counters counters_ ABSL_GUARDED_BY(mu_);
};

// The receiving side of PullWeights: the weights whole, or a delta against
// `held` (the weights the caller said it holds: a delta against anything
// else is refused). Every stream is checked against its header as the push
// receivers do (chunk_receiver.h); the header's mode, layout and the rest
// are checked as they arrive. Not thread-safe: one per stream.
class WeightsReceiver {
 public:
  explicit WeightsReceiver(std::shared_ptr<const WeightsSnapshot> held = nullptr,
                           BufferPool* spares = nullptr);

  // A refused stream stays refused: Add and Finish return the first error.
  absl::Status Add(const grpc::ByteBuffer& message);
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> Finish();

  bool has_header() const { return stream_.started(); }
  const v1::WeightsHeader& header() const { return stream_.header(); }

 private:
  absl::Status Accept(const grpc::ByteBuffer& message);
  absl::Status Start(const v1::WeightsHeader& h);
  // Whole weights, or a delta against `held_`, follow the header.
  absl::Status StartWhole(const v1::WeightsHeader& h);
  absl::Status StartDelta(const v1::WeightsHeader& h);

  absl::Status failed_;
  const std::shared_ptr<const WeightsSnapshot> held_;
  BufferPool* const spares_;
  chunked_internal::ChunkStream<v1::WeightsHeader> stream_;
  std::shared_ptr<WeightsSnapshot> snapshot_;
  bool started_ = false;
  // Whole weights.
  std::optional<ChunkAssembler> whole_;
  // A delta.
  PayloadShape delta_shape_;
  EncodedValues delta_;
  std::string delta_bytes_;
};

// The server side of PullWeights (callback API), for both tiers: a long
// poll on `board` that ends at the caller's deadline (no later than
// `max_long_poll`) or, with the request's no_wait, at once; then the
// snapshot's messages, one write at a time, from `encoder`. No thread waits
// meanwhile. A call whose credentials were refused (`admitted` not OK), or
// whose requester `identity` refuses, is answered with the refusal at once.
// `slot` is held until the call is done (the server's stream count).
// `board`, `encoder` and `metrics` (may be null) must outlive the server.
grpc::ServerWriteReactor<grpc::ByteBuffer>* ServePullWeights(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request, const WeightsBoard& board,
    WeightsEncoder* encoder, absl::Duration max_long_poll, RpcMetrics* metrics,
    const absl::Status& admitted = absl::OkStatus(),
    const std::function<absl::Status(const std::string& requester)>& identity = nullptr,
    StreamGuard::Slot slot = {});

// Calls PullWeights (`method` through `stub`: hips.v1.Hq or
// hips.v1.Aggregator) as a long poll that ends at `deadline` (or, with
// `no_wait`, answers at once; or at once when the server's weights are of
// another HQ incarnation than `incarnation`, 0 meaning none yet), presenting
// `token`, registered with `calls` for cancellation. Checks the layout and sizes; a malformed
// stream is refused with INVALID_ARGUMENT (the call is cancelled, not left
// to run into its deadline). With `held` (the weights the caller got from
// this server last), the server may answer with a delta against them.
// `edge`: with min_version, the oldest (version, edge round) wanted and the
// caller's edge epoch (an aggregator's edge rounds, fedavg).
absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeightsFrom(
    grpc::GenericStub* stub, const std::string& method, CallRegistry* calls,
    const std::string& token, const std::string& requester, int64_t min_version,
    absl::Time deadline, bool no_wait = false, int64_t incarnation = 0,
    std::shared_ptr<const WeightsSnapshot> held = nullptr, EdgePosition edge = {});

}  // namespace hips

#endif  // HIPS_SERVICES_NET_WEIGHTS_STREAM_H_
