#include "services/net/weights_stream.h"

#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "hips/v1/hips.pb.h"
#include "services/net/blocking_call.h"
#include "services/net/chunk_receiver.h"
#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"
#include "services/net/security.h"
#include "services/numeric/buffer_pool.h"
#include "services/types/ids.h"

namespace hips {

namespace {

v1::WeightsHeader HeaderOf(const WeightsSnapshot& snapshot) {
  v1::WeightsHeader h;
  h.set_version(snapshot.version);
  h.set_num_floats(static_cast<int64_t>(snapshot.weights.size()));
  h.set_training_done(snapshot.training_done);
  ModeToProto(snapshot.mode, h.mutable_mode());
  h.set_mode_since(snapshot.mode_since);
  h.set_incarnation(snapshot.incarnation);
  if (snapshot.mode.mode == Mode::kFedAvg) {
    LocalSgdToProto(snapshot.local_sgd, h.mutable_local_sgd());
    for (const std::string& id : snapshot.participants) h.add_participants(id);
  }
  h.set_drift(snapshot.drift);
  h.set_edge_round(snapshot.edge_round);
  h.set_edge_epoch(snapshot.edge_epoch);
  LayoutToProto(snapshot.layout, h.mutable_layout());
  return h;
}

}  // namespace

ChunkedPayload EncodeWeights(std::shared_ptr<const WeightsSnapshot> snapshot, size_t chunk_bytes) {
  ChunkedPayload out;
  out.header = HeaderOf(*snapshot).SerializeAsString();
  const absl::Span<const float> weights = snapshot->weights;
  out.chunks = ReferenceChunks(weights, chunk_bytes, std::move(snapshot));
  return out;
}

ChunkedPayload EncodeWeightsDelta(std::shared_ptr<const ChainStep> step, size_t chunk_bytes) {
  v1::WeightsHeader h = HeaderOf(*step->weights);
  v1::WeightsDelta* delta = h.mutable_delta();
  delta->set_base_version(step->base_version);
  delta->set_encoding(EncodingToProto(step->encoding));
  delta->set_nonzeros(step->nonzeros);
  delta->set_checksum(step->checksum);
  ChunkedPayload out;
  out.header = h.SerializeAsString();
  const absl::string_view bytes = step->delta;
  const size_t element = ElementBytes(step->encoding);
  out.chunks = ReferenceChunks(bytes, element, chunk_bytes, std::move(step));
  return out;
}

std::shared_ptr<const ChunkedPayload> ChainWeightsEncoder::Encode(
    const std::shared_ptr<const WeightsSnapshot>& newest, const HeldWeights& held) {
  // Stepped under the lock, so step_ only moves forward (the chain never
  // goes back) and each step's encodings and counts are made once.
  absl::MutexLock lock(&mu_);
  std::shared_ptr<const ChainStep> step = chain_.StepTo(newest);
  if (step != step_) {
    // Each step's encodings are made on first use; the previous step's go
    // once the streams sending them are done.
    step_ = step;
    whole_ = nullptr;
    delta_ = nullptr;
    counters_.drift = step->drift;
    if (step->resync()) ++counters_.resyncs;
  }
  const WeightsSnapshot& weights = *step->weights;
  if (!step->resync() && held.accepts_delta && held.incarnation == weights.incarnation &&
      held.version == step->base_version) {
    if (delta_ == nullptr) {
      delta_ = std::make_shared<const ChunkedPayload>(EncodeWeightsDelta(step, chunk_bytes_));
    }
    ++counters_.deltas_sent;
    return delta_;
  }
  if (whole_ == nullptr) {
    whole_ = std::make_shared<const ChunkedPayload>(EncodeWeights(step->weights, chunk_bytes_));
  }
  ++counters_.whole_sent;
  return whole_;
}

ChainWeightsEncoder::Counters ChainWeightsEncoder::counters() const {
  absl::MutexLock lock(&mu_);
  return counters_;
}

std::shared_ptr<const ChunkedPayload> WeightsEncodingCache::Get(
    const std::shared_ptr<const WeightsSnapshot>& snapshot) {
  absl::MutexLock lock(&mu_);
  if (snapshot_ != snapshot.get()) {
    // The previous encoding's slices keep its snapshot alive: the address
    // cannot be reused while encoded_ holds it.
    encoded_ = std::make_shared<const ChunkedPayload>(EncodeWeights(snapshot, chunk_bytes_));
    snapshot_ = snapshot.get();
  }
  return encoded_;
}

namespace {

// One PullWeights call: waits on the board (no thread held), then writes
// the snapshot's messages one at a time. Reactions may run concurrently
// (the board answers from a publishing thread); the lock orders them.
class PullWeightsReactor final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  PullWeightsReactor(grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request,
                     const WeightsBoard& board, WeightsEncoder* encoder,
                     absl::Duration max_long_poll, RpcMetrics* metrics,
                     const absl::Status& admitted,
                     const std::function<absl::Status(const std::string&)>& identity,
                     StreamGuard::Slot slot)
      : board_(board), encoder_(encoder), metrics_(metrics), slot_(std::move(slot)) {
    if (!admitted.ok()) {
      FinishOnce(ToGrpcStatus(admitted));
      return;
    }
    v1::PullWeightsRequest req;
    if (!ParseMessage(*request, &req)) {
      FinishOnce(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "unparsable PullWeights request"));
      return;
    }
    if (absl::Status s = ValidateMemberId(req.requester_id(), "requester_id"); !s.ok()) {
      FinishOnce(ToGrpcStatus(s));
      return;
    }
    if (identity) {
      if (absl::Status s = identity(req.requester_id()); !s.ok()) {
        FinishOnce(ToGrpcStatus(s));
        return;
      }
    }
    held_.accepts_delta = req.accepts_delta();
    held_.version = req.held_version();
    held_.incarnation = req.incarnation();
    const absl::Time deadline = req.no_wait() ? absl::Now() : LongPollDeadline(*ctx, max_long_poll);
    if (req.min_edge_round() < 0) {
      FinishOnce(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "negative min_edge_round"));
      return;
    }
    const int64_t id = board_.WaitAsync(
        req.min_version(), deadline, req.incarnation(),
        [this](absl::StatusOr<WeightsBoard::Snapshot> weights) { OnWeights(std::move(weights)); },
        EdgePosition{req.min_edge_round(), req.edge_epoch()});
    absl::MutexLock lock(&mu_);
    wait_ = id;
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      FinishOnce(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the caller went away mid-stream"));
      return;
    }
    WriteNext();
  }

  void OnCancel() override {
    int64_t wait;
    {
      absl::MutexLock lock(&mu_);
      wait = wait_;
    }
    // Still waiting: nobody else will finish the call.
    if (wait != 0 && board_.CancelWait(wait)) {
      FinishOnce(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    }
  }

  void OnDone() override { delete this; }

 private:
  void OnWeights(absl::StatusOr<WeightsBoard::Snapshot> weights) {
    if (!weights.ok()) {
      FinishOnce(ToGrpcStatus(weights.status()));
      return;
    }
    {
      absl::MutexLock lock(&mu_);
      // Timed from here: a long poll's wait is not the cost of sending.
      timer_.emplace(metrics_, "PullWeights");
      encoded_ = encoder_->Encode(*weights, held_);
      int64_t bytes = 0;
      for (const grpc::Slice& chunk : encoded_->chunks) bytes += static_cast<int64_t>(chunk.size());
      timer_->Sent(bytes);
    }
    WriteNext();
  }

  // gRPC is called without the lock held (a reaction may run on the
  // calling thread). One write is in flight at a time: the next starts from
  // the previous one's OnWriteDone.
  void WriteNext() {
    const grpc::ByteBuffer* message = nullptr;
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      if (next_ == encoded_->messages()) {
        finished_ = true;
      } else {
        // Kept until its write is done (it holds the slices it sends).
        message_ = encoded_->Message(next_++);
        message = &message_;
      }
    }
    if (message == nullptr) {
      Finish(grpc::Status::OK);
    } else {
      StartWrite(message);
    }
  }

  void FinishOnce(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (finished_) return;
      finished_ = true;
    }
    Finish(status);
  }

  const WeightsBoard& board_;
  WeightsEncoder* const encoder_;
  RpcMetrics* const metrics_;
  HeldWeights held_;        // set in the constructor, before any reaction
  StreamGuard::Slot slot_;  // released with the reactor, once the call is done
  absl::Mutex mu_;
  int64_t wait_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<const ChunkedPayload> encoded_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
  grpc::ByteBuffer message_ ABSL_GUARDED_BY(mu_);
  std::optional<RpcTimer> timer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* ServePullWeights(
    grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request, const WeightsBoard& board,
    WeightsEncoder* encoder, absl::Duration max_long_poll, RpcMetrics* metrics,
    const absl::Status& admitted, const std::function<absl::Status(const std::string&)>& identity,
    StreamGuard::Slot slot) {
  return new PullWeightsReactor(ctx, request, board, encoder, max_long_poll, metrics, admitted,
                                identity, std::move(slot));
}

WeightsReceiver::WeightsReceiver(std::shared_ptr<const WeightsSnapshot> held, BufferPool* spares)
    : held_(std::move(held)), spares_(spares) {}

namespace {

// What a weights header claims about its version, mode and edge round, by
// itself.
absl::Status CheckWeightsHeader(const v1::WeightsHeader& h) {
  if (h.version() < 0) return absl::InvalidArgumentError("weights with a negative version");
  if (h.mode_since() < 0 || h.mode_since() > h.version()) {
    return absl::InvalidArgumentError(absl::StrCat("weights of version ", h.version(),
                                                   " claim a mode since version ", h.mode_since()));
  }
  if (!std::isfinite(h.drift()) || h.drift() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("weights with a drift of ", h.drift()));
  }
  if (h.edge_round() < 0 || h.edge_round() >= kMaxEdgeRounds) {
    return absl::InvalidArgumentError(
        absl::StrCat("weights of edge round ", h.edge_round(), "; want [0, ", kMaxEdgeRounds, ")"));
  }
  if (h.edge_epoch() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("weights of edge epoch ", h.edge_epoch()));
  }
  if (h.edge_round() != 0 && (h.has_delta() || h.mode().mode() != v1::MODE_FEDAVG)) {
    // Edge rounds are an aggregator's own, served whole, in fedavg only.
    return absl::InvalidArgumentError(
        absl::StrCat("weights of edge round ", h.edge_round(), " outside fedavg or as a delta"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status WeightsReceiver::Start(const v1::WeightsHeader& h) {
  if (absl::Status s = CheckWeightsHeader(h); !s.ok()) return s;
  // Its buffer comes from (and goes back to) the weights pool: a tier that
  // receives every version fills the same few buffers.
  snapshot_ = NewRecycledSnapshot();
  absl::StatusOr<ModeConfig> mode = ModeFromProto(h.mode());
  if (!mode.ok()) return mode.status();
  snapshot_->mode = *mode;
  snapshot_->mode_since = h.mode_since();
  if (mode->mode == Mode::kFedAvg) {
    absl::StatusOr<LocalSgd> local = LocalSgdFromProto(h.local_sgd());
    if (!local.ok()) return local.status();
    snapshot_->local_sgd = *local;
    absl::StatusOr<std::vector<std::string>> drawn = ParticipantsFromProto(h.participants());
    if (!drawn.ok()) return drawn.status();
    snapshot_->participants = *std::move(drawn);
  }
  absl::StatusOr<ModelLayout> layout = LayoutFromProto(h.layout());
  if (!layout.ok()) return layout.status();
  snapshot_->layout = *std::move(layout);
  return h.has_delta() ? StartDelta(h) : StartWhole(h);
}

absl::Status WeightsReceiver::StartWhole(const v1::WeightsHeader& h) {
  const int64_t floats = snapshot_->layout.num_floats();
  absl::StatusOr<ChunkAssembler> assembler =
      ChunkAssembler::Create(h.num_floats(), floats,
                             spares_ == nullptr || h.num_floats() != floats
                                 ? std::vector<float>()
                                 : spares_->TakeIfKept(static_cast<size_t>(floats)));
  if (!assembler.ok()) return assembler.status();
  whole_ = *std::move(assembler);
  return absl::OkStatus();
}

absl::Status WeightsReceiver::StartDelta(const v1::WeightsHeader& h) {
  const int64_t floats = snapshot_->layout.num_floats();
  const v1::WeightsDelta& d = h.delta();
  if (held_ == nullptr || held_->incarnation != h.incarnation() ||
      held_->version != d.base_version()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "delta: against version ", d.base_version(), " of incarnation ", h.incarnation(),
        ", and this caller holds ",
        held_ == nullptr
            ? std::string("no weights")
            : absl::StrCat("version ", held_->version, " of incarnation ", held_->incarnation)));
  }
  if (h.version() <= d.base_version()) {
    return absl::InvalidArgumentError(absl::StrCat("delta: weights of version ", h.version(),
                                                   " from version ", d.base_version()));
  }
  if (held_->layout != snapshot_->layout) {
    return absl::InvalidArgumentError(absl::StrCat(
        "delta: against weights of another layout: ",
        ModelLayout::FirstDifference(held_->layout, snapshot_->layout, "held", "delta")));
  }
  if (h.num_floats() != floats) {
    return absl::InvalidArgumentError(absl::StrCat(
        "num_floats: the stream announces ", h.num_floats(), " floats, the model has ", floats));
  }
  absl::StatusOr<Encoding> encoding = EncodingFromProto(d.encoding(), floats, d.nonzeros());
  if (!encoding.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("delta: ", encoding.status().message()));
  }
  if (*encoding == Encoding::kFp32) return absl::InvalidArgumentError("delta: in fp32");
  delta_.encoding = *encoding;
  delta_.num_floats = floats;
  delta_.nonzeros = d.nonzeros();
  delta_shape_ =
      PayloadShape{PayloadBytes(*encoding, floats, d.nonzeros()), ElementBytes(*encoding)};
  // At most 8 bytes per float of the weights this caller already holds.
  delta_bytes_.reserve(static_cast<size_t>(delta_shape_.bytes));
  return absl::OkStatus();
}

absl::Status WeightsReceiver::Add(const grpc::ByteBuffer& message) {
  if (failed_.ok()) failed_ = Accept(message);
  return failed_;
}

absl::Status WeightsReceiver::Accept(const grpc::ByteBuffer& message) {
  ReceivedChunk chunk;
  if (absl::Status s = stream_.Decode(message, &chunk); !s.ok()) return s;
  if (!started_) {
    started_ = true;
    if (absl::Status s = Start(stream_.header()); !s.ok()) return s;
  }
  if (whole_.has_value()) return whole_->Append(chunk.data);
  absl::StatusOr<int64_t> offset = stream_.Account(chunk, delta_shape_);
  if (!offset.ok()) return offset.status();
  for (absl::string_view piece : chunk.data) delta_bytes_.append(piece.data(), piece.size());
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> WeightsReceiver::Finish() {
  if (!failed_.ok()) return failed_;
  if (!started_) return absl::InvalidArgumentError("header: the stream ended before it");
  const v1::WeightsHeader& h = stream_.header();
  if (whole_.has_value()) {
    absl::StatusOr<std::vector<float>> weights = std::move(*whole_).Finish();
    if (!weights.ok()) return weights.status();
    snapshot_->weights = *std::move(weights);
  } else {
    if (absl::Status s = stream_.Complete(delta_shape_); !s.ok()) return s;
    delta_.bytes = FloatPieces();
    if (!delta_bytes_.empty()) delta_.bytes.Append(delta_bytes_);
    if (absl::Status s = ApplyWeightsDelta(held_->weights, delta_, &snapshot_->weights); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("delta: ", s.message()));
    }
    // The bits the sender's chain holds, or the held weights were not what
    // the sender thinks (a damaged copy, a bug): they are asked for whole.
    const uint64_t rebuilt = WeightsChecksum(snapshot_->weights);
    if (rebuilt != h.delta().checksum()) {
      return absl::DataLossError(absl::StrCat("delta: the weights of version ", h.version(),
                                              " rebuilt from version ", held_->version,
                                              " have checksum ", absl::Hex(rebuilt),
                                              ", the sender's ", absl::Hex(h.delta().checksum())));
    }
  }
  snapshot_->version = h.version();
  snapshot_->training_done = h.training_done();
  snapshot_->incarnation = h.incarnation();
  snapshot_->drift = h.drift();
  snapshot_->edge_round = h.edge_round();
  snapshot_->edge_epoch = h.edge_epoch();
  return std::shared_ptr<const WeightsSnapshot>(std::move(snapshot_));
}

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeightsFrom(
    grpc::GenericStub* stub, const std::string& method, CallRegistry* calls,
    const std::string& token, const std::string& requester, int64_t min_version,
    absl::Time deadline, bool no_wait, int64_t incarnation,
    std::shared_ptr<const WeightsSnapshot> held, EdgePosition edge) {
  grpc::ClientContext ctx;
  CallRegistry::Guard guard(calls, &ctx);
  ctx.set_deadline(absl::ToChronoTime(deadline));
  ctx.set_wait_for_ready(true);
  Authenticate(&ctx, token);
  v1::PullWeightsRequest req;
  req.set_requester_id(requester);
  req.set_min_version(min_version);
  req.set_no_wait(no_wait);
  req.set_incarnation(incarnation);
  req.set_min_edge_round(edge.round);
  req.set_edge_epoch(edge.epoch);
  if (held != nullptr && held->incarnation == incarnation) {
    req.set_accepts_delta(true);
    req.set_held_version(held->version);
  } else {
    held = nullptr;
  }
  WeightsReceiver receiver(std::move(held), &WeightsBuffers());
  absl::Status malformed;
  grpc::Status finish;
  {
    BlockingCall call(stub, &ctx, method);
    if (call.Write(SerializeMessage(req)) && call.WritesDone()) {
      grpc::ByteBuffer message;
      while (malformed.ok() && call.Read(&message)) malformed = receiver.Add(message);
      // With messages still unread Finish would wait for them: cancel first.
      if (!malformed.ok()) ctx.TryCancel();
    }
    finish = call.Finish();
  }
  if (!malformed.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed weights stream: ", malformed.message()));
  }
  if (!finish.ok()) return FromGrpcStatus(finish);
  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> weights = receiver.Finish();
  if (absl::IsDataLoss(weights.status())) {
    // Rebuilt bits that differ from the sender's: the same call again,
    // asking for the weights whole (every later delta would build on them).
    LOG(WARNING) << "pulling weights: " << weights.status().message() << "; asking for them whole";
    return PullWeightsFrom(stub, method, calls, token, requester, min_version, deadline, no_wait,
                           incarnation, nullptr, edge);
  }
  if (!weights.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed weights stream: ", weights.status().message()));
  }
  return weights;
}

}  // namespace hips
