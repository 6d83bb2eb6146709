#ifndef HIPS_SERVICES_NET_PUSH_STREAM_H_
#define HIPS_SERVICES_NET_PUSH_STREAM_H_

#include <grpcpp/generic/generic_stub.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "hips/v1/hips.pb.h"
#include "services/net/blocking_call.h"
#include "services/net/call_registry.h"
#include "services/net/grpc_util.h"
#include "services/net/raw_chunks.h"
#include "services/net/security.h"
#include "services/types/payloads.h"

namespace hips {

// What a push sends: the dense floats' bytes, or their encoding on a
// compressed hop.
inline absl::string_view PayloadOf(const std::vector<float>& dense, const EncodedPayload& encoded) {
  if (encoded.encoding != Encoding::kFp32) return encoded.bytes;
  return absl::string_view(reinterpret_cast<const char*>(dense.data()),
                           dense.size() * sizeof(float));
}

// One push RPC (PushGradient or PushAggregate: `method` through `stub`):
// the header, then the chunks of `payload` (elements of `element_bytes`)
// straight from its memory (no copy), then the ack. Waits for a connection
// up to `timeout`, presenting `token`. The call is registered with `calls`
// for cancellation.
// Returns only once gRPC released `payload`, so the caller may reuse it at
// once.
template <typename Header>
absl::StatusOr<PushResult> PushChunked(CallRegistry* calls, const std::string& token,
                                       grpc::GenericStub* stub, const std::string& method,
                                       const Header& header, absl::string_view payload,
                                       size_t element_bytes, size_t chunk_bytes,
                                       std::chrono::seconds timeout = std::chrono::seconds(300)) {
  SliceRelease release;
  grpc::Status status;
  v1::PushAck ack;
  bool acked = false;
  {
    grpc::ClientContext ctx;
    CallRegistry::Guard guard(calls, &ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    ctx.set_wait_for_ready(true);
    Authenticate(&ctx, token);
    ChunkedPayload stream{header.SerializeAsString(),
                          ReferenceChunks(payload, element_bytes, chunk_bytes, release.owner())};
    BlockingCall call(stub, &ctx, method);
    bool sent = true;
    for (size_t i = 0; sent && i < stream.messages(); ++i) sent = call.Write(stream.Message(i));
    if (sent && call.WritesDone()) {
      grpc::ByteBuffer reply;
      acked = call.Read(&reply) && ParseMessage(reply, &ack);
    }
    status = call.Finish();
  }
  WaitForRelease(&release);
  if (!status.ok()) return FromGrpcStatus(status);
  if (!acked) return absl::InternalError("the push ended without an acknowledgement");
  return PushResult{ack.version(), ack.duplicate(), ack.newest_version()};
}

}  // namespace hips

#endif  // HIPS_SERVICES_NET_PUSH_STREAM_H_
