#ifndef HIPS_SERVICES_NET_CALL_REGISTRY_H_
#define HIPS_SERVICES_NET_CALL_REGISTRY_H_

#include <grpcpp/grpcpp.h>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"

namespace hips {

// The client calls a stub has in flight, so that shutting down cancels them
// at once instead of waiting out a long poll or a retry. Thread-safe.
class CallRegistry {
 public:
  // Registers `ctx` for the lifetime of the guard. After CancelAll, a new
  // call is cancelled as soon as it registers.
  class Guard {
   public:
    Guard(CallRegistry* registry, grpc::ClientContext* ctx);
    ~Guard();
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;

   private:
    CallRegistry* const registry_;
    grpc::ClientContext* const ctx_;
  };

  // Cancels every registered call and every later one. Idempotent.
  void CancelAll();
  // Cancels the calls registered now; later ones go ahead.
  void CancelInFlight();

 private:
  absl::Mutex mu_;
  absl::flat_hash_set<grpc::ClientContext*> calls_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace hips

#endif  // HIPS_SERVICES_NET_CALL_REGISTRY_H_
