#include "services/net/weights_stream.h"

#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "services/core/buffer_pool.h"
#include "services/net/chunked_stream.h"
#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"

namespace hips {

EncodedWeights EncodeWeights(std::shared_ptr<const WeightsSnapshot> snapshot,
                             size_t chunk_bytes) {
  v1::WeightsHeader h;
  h.set_version(snapshot->version);
  h.set_num_floats(static_cast<int64_t>(snapshot->weights.size()));
  h.set_training_done(snapshot->training_done);
  ModeToProto(snapshot->mode, h.mutable_mode());
  h.set_mode_since(snapshot->mode_since);
  h.set_incarnation(snapshot->incarnation);
  LayoutToProto(snapshot->layout, h.mutable_layout());
  EncodedWeights out;
  out.header = h.SerializeAsString();
  const absl::Span<const float> weights = snapshot->weights;
  out.chunks = ReferenceChunks(weights, chunk_bytes, std::move(snapshot));
  return out;
}

std::shared_ptr<const EncodedWeights> WeightsEncodingCache::Get(
    const std::shared_ptr<const WeightsSnapshot>& snapshot) {
  absl::MutexLock lock(&mu_);
  if (snapshot_ != snapshot.get()) {
    // The previous encoding's slices keep its snapshot alive: the address
    // cannot be reused while encoded_ holds it.
    encoded_ = std::make_shared<const EncodedWeights>(EncodeWeights(snapshot, chunk_bytes_));
    snapshot_ = snapshot.get();
  }
  return encoded_;
}

bool WriteWeights(grpc::ServerWriter<grpc::ByteBuffer>* writer, const EncodedWeights& weights) {
  return WriteChunked(writer, weights.header, weights.chunks);
}

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> ReadWeights(
    grpc::ClientContext* ctx, grpc::ClientReader<grpc::ByteBuffer>* reader) {
  // Its buffer comes from (and goes back to) the weights pool: a tier that
  // receives every version fills the same few buffers.
  std::shared_ptr<WeightsSnapshot> snapshot = NewRecycledSnapshot();
  v1::WeightsHeader header;
  std::function<absl::StatusOr<int64_t>(const v1::WeightsHeader&)> expected =
      [&](const v1::WeightsHeader& h) -> absl::StatusOr<int64_t> {
    if (h.version() < 0) return absl::InvalidArgumentError("weights with a negative version");
    if (h.mode_since() < 0 || h.mode_since() > h.version()) {
      return absl::InvalidArgumentError(absl::StrCat("weights of version ", h.version(),
                                                     " claim a mode since version ",
                                                     h.mode_since()));
    }
    absl::StatusOr<ModeConfig> mode = ModeFromProto(h.mode());
    if (!mode.ok()) return mode.status();
    snapshot->mode = *mode;
    snapshot->mode_since = h.mode_since();
    absl::StatusOr<ModelLayout> layout = LayoutFromProto(h.layout());
    if (!layout.ok()) return layout.status();
    snapshot->layout = *std::move(layout);
    return snapshot->layout.num_floats();
  };
  // Remembers whether the stream ran dry, i.e. whether the call is over.
  struct EndTrackingReader {
    grpc::ClientReader<grpc::ByteBuffer>* reader;
    bool ended = false;
    bool Read(grpc::ByteBuffer* m) {
      ended = !reader->Read(m);
      return !ended;
    }
  } tracking{reader};
  absl::StatusOr<std::vector<float>> weights =
      ReadChunked(&tracking, &header, expected, &WeightsBuffers());
  if (!weights.ok()) {
    // With messages still unread Finish would wait for them: cancel first.
    if (!tracking.ended) ctx->TryCancel();
    const grpc::Status finish = reader->Finish();
    // A stream that ended early because the call failed is best explained
    // by the call's own status.
    if (tracking.ended && !finish.ok()) return FromGrpcStatus(finish);
    return absl::InvalidArgumentError(
        absl::StrCat("malformed weights stream: ", weights.status().message()));
  }
  const grpc::Status finish = reader->Finish();
  if (!finish.ok()) return FromGrpcStatus(finish);
  snapshot->version = header.version();
  snapshot->training_done = header.training_done();
  snapshot->incarnation = header.incarnation();
  snapshot->weights = *std::move(weights);
  return snapshot;
}

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeightsFrom(
    grpc::ChannelInterface* channel, const grpc::internal::RpcMethod& method, CallRegistry* calls,
    const std::string& requester, int64_t min_version, absl::Time deadline, bool no_wait,
    int64_t incarnation) {
  grpc::ClientContext ctx;
  CallRegistry::Guard guard(calls, &ctx);
  ctx.set_deadline(absl::ToChronoTime(deadline));
  ctx.set_wait_for_ready(true);
  v1::PullWeightsRequest req;
  req.set_requester_id(requester);
  req.set_min_version(min_version);
  req.set_no_wait(no_wait);
  req.set_incarnation(incarnation);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel, method, &ctx, req));
  return ReadWeights(&ctx, reader.get());
}

}  // namespace hips
