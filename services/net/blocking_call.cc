#include "services/net/blocking_call.h"

namespace hips {

BlockingCall::BlockingCall(grpc::GenericStub* stub, grpc::ClientContext* ctx,
                           const std::string& method)
    : ctx_(ctx), call_(stub->PrepareCall(ctx, method, &cq_)) {
  call_->StartCall(this);
  started_ = Await();
}

BlockingCall::~BlockingCall() {
  if (!finished_) {
    ctx_->TryCancel();
    (void)Finish();
  }
  cq_.Shutdown();
  void* tag;
  bool ok;
  while (cq_.Next(&tag, &ok)) {
  }
}

bool BlockingCall::Await() {
  void* tag = nullptr;
  bool ok = false;
  return cq_.Next(&tag, &ok) && ok;
}

bool BlockingCall::Write(const grpc::ByteBuffer& message) {
  if (!started_) return false;
  call_->Write(message, this);
  return Await();
}

bool BlockingCall::WritesDone() {
  if (!started_) return false;
  call_->WritesDone(this);
  return Await();
}

bool BlockingCall::Read(grpc::ByteBuffer* message) {
  if (!started_) return false;
  call_->Read(message, this);
  return Await();
}

grpc::Status BlockingCall::Finish() {
  grpc::Status status;
  finished_ = true;
  call_->Finish(&status, this);
  void* tag = nullptr;
  bool ok = false;
  cq_.Next(&tag, &ok);
  return status;
}

}  // namespace hips
