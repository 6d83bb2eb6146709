#ifndef HIPS_SERVICES_NET_PUSH_STREAM_H_
#define HIPS_SERVICES_NET_PUSH_STREAM_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/proto_utils.h>
#include <grpcpp/support/sync_stream.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "hips/v1/hips.pb.h"
#include "services/core/payloads.h"
#include "services/net/call_registry.h"
#include "services/net/chunked_stream.h"
#include "services/net/grpc_util.h"

namespace hips {

// What a push sends: the dense floats' bytes, or their encoding on a
// compressed hop.
inline absl::string_view PayloadOf(const std::vector<float>& dense, const EncodedPayload& encoded) {
  if (encoded.encoding != Encoding::kFp32) return encoded.bytes;
  return absl::string_view(reinterpret_cast<const char*>(dense.data()),
                           dense.size() * sizeof(float));
}

// One push RPC (PushGradient or PushAggregate, `method` of `channel`): the
// header, then the chunks of `payload` (elements of `element_bytes`)
// straight from its memory (no copy), then the call is finished. Waits for a
// connection up to `timeout`. The call is registered with `calls` for
// cancellation. Returns only once gRPC released `payload`, so the caller may
// reuse it at once.
template <typename Header>
absl::StatusOr<PushResult> PushChunked(CallRegistry* calls, grpc::ChannelInterface* channel,
                                       const grpc::internal::RpcMethod& method,
                                       const Header& header, absl::string_view payload,
                                       size_t element_bytes, size_t chunk_bytes,
                                       std::chrono::seconds timeout = std::chrono::seconds(300)) {
  SliceRelease release;
  grpc::Status status;
  v1::PushAck ack;
  {
    grpc::ClientContext ctx;
    CallRegistry::Guard guard(calls, &ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + timeout);
    ctx.set_wait_for_ready(true);
    const std::vector<grpc::Slice> chunks =
        ReferenceChunks(payload, element_bytes, chunk_bytes, release.owner());
    std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer(
        grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(channel, method, &ctx,
                                                                      &ack));
    if (WriteChunked(writer.get(), header.SerializeAsString(), chunks)) writer->WritesDone();
    status = writer->Finish();
  }
  WaitForRelease(&release);
  if (!status.ok()) return FromGrpcStatus(status);
  return PushResult{ack.version(), ack.duplicate(), ack.newest_version()};
}

}  // namespace hips

#endif  // HIPS_SERVICES_NET_PUSH_STREAM_H_
