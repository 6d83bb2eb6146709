#ifndef HIPS_SERVICES_NET_SERVER_GATE_H_
#define HIPS_SERVICES_NET_SERVER_GATE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "services/net/security.h"
#include "services/net/stream_guard.h"

namespace hips {

// How much a server serves at once (docs/security.md, "Limits").
struct ServeLimits {
  // Streaming calls (pushes, weight pulls) open at once; 0: no limit.
  int max_streams = 0;
  // Of them, open at once by one member (Authorizer::Caller); 0: no limit.
  int max_streams_per_member = 0;
  // A push that delivers no chunk for this long is cancelled.
  absl::Duration stream_idle = absl::InfiniteDuration();
};

// What a hips server checks before it serves a call, in one place for both
// services: the caller's credentials, that a member speaks for itself
// (mTLS), and room for another stream; every refusal is counted by reason
// (RefusalCounter). Thread-safe; `authorizer` must outlive it.
class ServerGate {
 public:
  ServerGate(const Authorizer* authorizer, const ServeLimits& limits)
      : authorizer_(authorizer),
        streams_(
            limits.max_streams, limits.stream_idle,
            [this] { refusals_.Count(absl::DeadlineExceededError("a push stream stalled")); },
            limits.max_streams_per_member) {}

  // OK, or the refusal of the caller's credentials (counted).
  absl::Status Admit(const grpc::ServerContextBase& ctx, Access access) {
    return Counted(authorizer_->Check(ctx, access));
  }
  // Admit, then a slot for the stream of `ctx` (a `push` is watched for
  // stalls); RESOURCE_EXHAUSTED (counted) when the server is full, or its
  // caller holds as many streams as one member may.
  absl::Status AdmitStream(grpc::ServerContextBase* ctx, Access access, bool push,
                           StreamGuard::Slot* slot) {
    if (absl::Status s = Admit(*ctx, access); !s.ok()) return s;
    absl::StatusOr<StreamGuard::Slot> opened = streams_.Open(ctx, push, authorizer_->Caller(*ctx));
    if (!opened.ok()) return Counted(opened.status());
    *slot = *std::move(opened);
    return absl::OkStatus();
  }
  // OK, or PERMISSION_DENIED (counted) when `member` is not the identity of
  // the caller's certificate.
  absl::Status Identify(const grpc::ServerContextBase& ctx, absl::string_view member) {
    return Counted(authorizer_->CheckIdentity(ctx, member));
  }
  // `why` (a refusal decided elsewhere: a full membership), counted.
  absl::Status Counted(absl::Status why) {
    if (!why.ok()) refusals_.Count(why);
    return why;
  }

  std::map<std::string, int64_t> refusals() const { return refusals_.counts(); }
  const StreamGuard& streams() const { return streams_; }

 private:
  const Authorizer* const authorizer_;
  RefusalCounter refusals_;
  StreamGuard streams_;  // after refusals_: its watcher counts stalls there
};

}  // namespace hips

#endif  // HIPS_SERVICES_NET_SERVER_GATE_H_
