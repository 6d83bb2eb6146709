#ifndef HIPS_SERVICES_NET_PUSH_REACTOR_H_
#define HIPS_SERVICES_NET_PUSH_REACTOR_H_

#include <grpcpp/grpcpp.h>

#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "hips/v1/hips.pb.h"
#include "services/metrics/rpc_metrics.h"
#include "services/net/chunk_receiver.h"
#include "services/net/grpc_util.h"
#include "services/net/raw_chunks.h"
#include "services/net/stream_guard.h"
#include "services/types/payloads.h"

namespace hips {

// The server side of a push (PushGradient at an aggregator, PushAggregate at
// HQ) on gRPC's callback API. Reads the chunk messages into a PushReceiver
// as they arrive (a float32 payload is scaled into buffer() while each
// chunk is in cache), hands the whole push to Accept, and answers with the
// PushAck once the tier calls Reply: at once, or much later (an aggregator
// answers once HQ answered the aggregate), with no thread held meanwhile.
// Subclasses say what a header must announce, how its values are scaled and
// what becomes of a push; they give buffer() back in their destructor. A
// stream refused before Accept is answered with the refusal (and Refused
// counts it); one its sender cancelled is not a refusal. Deletes itself
// when the call is done.
template <typename Header>
class PushReactor : public grpc::ServerReadReactor<grpc::ByteBuffer> {
 public:
  // `squares`: the values carry the sum of their squares (PushReceiver).
  PushReactor(grpc::CallbackServerContext* ctx, grpc::ByteBuffer* response, RpcMetrics* metrics,
              const char* rpc, std::vector<float> buffer, bool squares = false)
      : ctx_(ctx),
        response_(response),
        timer_(metrics, rpc),
        buffer_(std::move(buffer)),
        receiver_([this](const Header& h) { return Expected(h); },
                  [this](const Header& h) { return Scale(h); }, &buffer_, squares) {}

  // Starts reading, or with `admitted` not OK (the caller's credentials
  // were refused, or the server is full) answers with it without reading.
  // `slot` (held until the call is done) is told of every chunk, so a
  // stream that stalls is cancelled (StreamGuard). The subclass calls it
  // last in its constructor.
  void Start(const absl::Status& admitted, StreamGuard::Slot slot) {
    if (!admitted.ok()) {
      Finish(ToGrpcStatus(admitted));
      return;
    }
    slot_ = std::move(slot);
    StartRead(&message_);
  }

 protected:
  // What a stream with this header must carry (or why it is refused).
  virtual absl::StatusOr<PayloadShape> Expected(const Header& header) = 0;
  // What a float32 payload is multiplied by as it arrives.
  virtual float Scale(const Header& header) = 0;
  // The whole push, checked against its header. Must lead to exactly one
  // Reply, from any thread, now or later; `buffer()` must outlive that.
  virtual void Accept(const Header& header, ReceivedValues values) = 0;
  // A stream refused before Accept (malformed, or its header refused).
  virtual void Refused(const absl::Status& why) = 0;

  // Answers the push: its ack, or its refusal.
  void Reply(const absl::StatusOr<PushResult>& result) {
    if (!result.ok()) {
      Finish(ToGrpcStatus(result.status()));
      return;
    }
    v1::PushAck ack;
    ack.set_version(result->version);
    ack.set_duplicate(result->duplicate);
    ack.set_newest_version(result->newest_version);
    *response_ = SerializeMessage(ack);
    Finish(grpc::Status::OK);
  }

  std::vector<float>& buffer() { return buffer_; }
  grpc::CallbackServerContext* context() const { return ctx_; }

 private:
  // One read is in flight at a time, and Accept comes after the last: the
  // reads need no lock.
  void OnReadDone(bool ok) override {
    if (ok) {
      slot_.Progress();
      if (absl::Status s = receiver_.Add(message_); !s.ok()) return Refuse(s);
      StartRead(&message_);
      return;
    }
    // The stream ended: whole, or cut off by its sender.
    if (ctx_->IsCancelled()) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    // Waiting for the answer is not idleness (StreamGuard::Slot::Arrived).
    slot_.Arrived();
    absl::StatusOr<ReceivedValues> values = receiver_.Finish();
    if (!values.ok()) return Refuse(values.status());
    timer_.Received(static_cast<int64_t>(values->values.bytes.bytes()));
    Accept(receiver_.header(), *std::move(values));
  }

  void Refuse(const absl::Status& why) {
    // An upload its sender cancelled is not a refused push.
    if (ctx_->IsCancelled()) return Finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    Refused(why);
    Finish(ToGrpcStatus(why));
  }

  void OnDone() override { delete this; }

  grpc::CallbackServerContext* const ctx_;
  grpc::ByteBuffer* const response_;
  RpcTimer timer_;  // the whole call, end to end
  std::vector<float> buffer_;
  PushReceiver<Header> receiver_;
  grpc::ByteBuffer message_;
  StreamGuard::Slot slot_;  // released with the reactor, once the call is done
};

}  // namespace hips

#endif  // HIPS_SERVICES_NET_PUSH_REACTOR_H_
