#include "services/net/call_registry.h"

namespace hips {

CallRegistry::Guard::Guard(CallRegistry* registry, grpc::ClientContext* ctx)
    : registry_(registry), ctx_(ctx) {
  absl::MutexLock lock(&registry_->mu_);
  registry_->calls_.insert(ctx_);
  // TryCancel before the call starts makes it fail with CANCELLED at once.
  if (registry_->cancelled_) ctx_->TryCancel();
}

CallRegistry::Guard::~Guard() {
  absl::MutexLock lock(&registry_->mu_);
  registry_->calls_.erase(ctx_);
}

void CallRegistry::CancelAll() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  for (grpc::ClientContext* ctx : calls_) ctx->TryCancel();
}

void CallRegistry::CancelInFlight() {
  absl::MutexLock lock(&mu_);
  for (grpc::ClientContext* ctx : calls_) ctx->TryCancel();
}

}  // namespace hips
