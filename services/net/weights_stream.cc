#include "services/net/weights_stream.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "hips/v1/hips.pb.h"
#include "services/core/buffer_pool.h"
#include "services/core/ids.h"
#include "services/net/blocking_call.h"
#include "services/net/chunk_receiver.h"
#include "services/net/grpc_util.h"
#include "services/net/proto_convert.h"
#include "services/net/security.h"

namespace hips {

ChunkedPayload EncodeWeights(std::shared_ptr<const WeightsSnapshot> snapshot, size_t chunk_bytes) {
  v1::WeightsHeader h;
  h.set_version(snapshot->version);
  h.set_num_floats(static_cast<int64_t>(snapshot->weights.size()));
  h.set_training_done(snapshot->training_done);
  ModeToProto(snapshot->mode, h.mutable_mode());
  h.set_mode_since(snapshot->mode_since);
  h.set_incarnation(snapshot->incarnation);
  if (snapshot->mode.mode == Mode::kFedAvg) {
    LocalSgdToProto(snapshot->local_sgd, h.mutable_local_sgd());
    for (const std::string& id : snapshot->participants) h.add_participants(id);
  }
  LayoutToProto(snapshot->layout, h.mutable_layout());
  ChunkedPayload out;
  out.header = h.SerializeAsString();
  const absl::Span<const float> weights = snapshot->weights;
  out.chunks = ReferenceChunks(weights, chunk_bytes, std::move(snapshot));
  return out;
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
                     const WeightsBoard& board, WeightsEncodingCache* cache,
                     absl::Duration max_long_poll, RpcMetrics* metrics,
                     const absl::Status& admitted,
                     const std::function<absl::Status(const std::string&)>& identity,
                     StreamGuard::Slot slot)
      : board_(board), cache_(cache), metrics_(metrics), slot_(std::move(slot)) {
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
    const absl::Time deadline = req.no_wait() ? absl::Now() : LongPollDeadline(*ctx, max_long_poll);
    const int64_t id = board_.WaitAsync(
        req.min_version(), deadline, req.incarnation(),
        [this](absl::StatusOr<WeightsBoard::Snapshot> weights) { OnWeights(std::move(weights)); });
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
      timer_->Sent(static_cast<int64_t>((*weights)->weights.size() * sizeof(float)));
      encoded_ = cache_->Get(*weights);
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
  WeightsEncodingCache* const cache_;
  RpcMetrics* const metrics_;
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
    WeightsEncodingCache* cache, absl::Duration max_long_poll, RpcMetrics* metrics,
    const absl::Status& admitted, const std::function<absl::Status(const std::string&)>& identity,
    StreamGuard::Slot slot) {
  return new PullWeightsReactor(ctx, request, board, cache, max_long_poll, metrics, admitted,
                                identity, std::move(slot));
}

absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeightsFrom(
    grpc::GenericStub* stub, const std::string& method, CallRegistry* calls,
    const std::string& token, const std::string& requester, int64_t min_version,
    absl::Time deadline, bool no_wait, int64_t incarnation) {
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
  // Its buffer comes from (and goes back to) the weights pool: a tier that
  // receives every version fills the same few buffers.
  std::shared_ptr<WeightsSnapshot> snapshot = NewRecycledSnapshot();
  AssemblingReceiver<v1::WeightsHeader> receiver(
      [&](const v1::WeightsHeader& h) -> absl::StatusOr<int64_t> {
        if (h.version() < 0) return absl::InvalidArgumentError("weights with a negative version");
        if (h.mode_since() < 0 || h.mode_since() > h.version()) {
          return absl::InvalidArgumentError(absl::StrCat(
              "weights of version ", h.version(), " claim a mode since version ", h.mode_since()));
        }
        absl::StatusOr<ModeConfig> mode = ModeFromProto(h.mode());
        if (!mode.ok()) return mode.status();
        snapshot->mode = *mode;
        snapshot->mode_since = h.mode_since();
        if (mode->mode == Mode::kFedAvg) {
          absl::StatusOr<LocalSgd> local = LocalSgdFromProto(h.local_sgd());
          if (!local.ok()) return local.status();
          snapshot->local_sgd = *local;
          absl::StatusOr<std::vector<std::string>> drawn = ParticipantsFromProto(h.participants());
          if (!drawn.ok()) return drawn.status();
          snapshot->participants = *std::move(drawn);
        } else {
          snapshot->local_sgd = LocalSgd();
          snapshot->participants.clear();
        }
        absl::StatusOr<ModelLayout> layout = LayoutFromProto(h.layout());
        if (!layout.ok()) return layout.status();
        snapshot->layout = *std::move(layout);
        return snapshot->layout.num_floats();
      },
      &WeightsBuffers());
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
  absl::StatusOr<std::vector<float>> weights = receiver.Finish();
  if (!weights.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed weights stream: ", weights.status().message()));
  }
  const v1::WeightsHeader& header = receiver.header();
  snapshot->version = header.version();
  snapshot->training_done = header.training_done();
  snapshot->incarnation = header.incarnation();
  snapshot->weights = *std::move(weights);
  return snapshot;
}

}  // namespace hips
