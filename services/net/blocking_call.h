#ifndef HIPS_SERVICES_NET_BLOCKING_CALL_H_
#define HIPS_SERVICES_NET_BLOCKING_CALL_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

namespace hips {

// One streaming call of raw grpc::ByteBuffers through grpc::GenericStub (the
// public API for methods whose messages are not protobuf objects), driven
// from the calling thread: every step waits on a completion queue of the
// call's own, as gRPC's synchronous API does inside. For clients that want
// blocking semantics: a push (Write the chunks, WritesDone, Read the ack,
// Finish) or a pull (Write the request, WritesDone, Read the chunks,
// Finish). Any client-side stream shape works: on the wire a call is a
// call. Not thread-safe, except that another thread may cancel it through
// its ClientContext (TryCancel), which ends every step at once.
class BlockingCall {
 public:
  // Starts `method` ("/hips.v1.Hq/PushAggregate") on `stub`'s channel with
  // `ctx` (its deadline and wait-for-ready apply). `ctx` must outlive the
  // call.
  BlockingCall(grpc::GenericStub* stub, grpc::ClientContext* ctx, const std::string& method);
  // Finishes the call if nobody did (cancelling it first).
  ~BlockingCall();

  BlockingCall(const BlockingCall&) = delete;
  BlockingCall& operator=(const BlockingCall&) = delete;

  // False when the stream broke (Finish tells why).
  bool Write(const grpc::ByteBuffer& message);
  bool WritesDone();
  // False when no message is left (Finish tells whether that is an error).
  bool Read(grpc::ByteBuffer* message);
  // The call's status; once.
  grpc::Status Finish();

 private:
  // Waits for the one operation in flight.
  bool Await();

  grpc::ClientContext* const ctx_;
  grpc::CompletionQueue cq_;
  std::unique_ptr<grpc::GenericClientAsyncReaderWriter> call_;
  bool started_ = false;
  bool finished_ = false;
};

}  // namespace hips

#endif  // HIPS_SERVICES_NET_BLOCKING_CALL_H_
