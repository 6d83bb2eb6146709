#ifndef HIPS_SERVICES_NET_PUSH_STREAM_H_
#define HIPS_SERVICES_NET_PUSH_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "hips/v1/hips.pb.h"
#include "services/core/payloads.h"
#include "services/net/call_registry.h"
#include "services/net/chunked_stream.h"
#include "services/net/grpc_util.h"

namespace hips {

// One push RPC (PushGradient or PushAggregate): `open(&ctx, &ack)` starts the
// client stream, then `first` (with its header) and the chunks of `data` are
// written and the call is finished. Waits for a connection up to `timeout`.
// The call is registered with `calls` for cancellation.
template <typename Chunk, typename OpenFn>
absl::StatusOr<PushResult> PushChunked(CallRegistry* calls, OpenFn open, Chunk first,
                                       absl::Span<const float> data, size_t chunk_bytes,
                                       std::chrono::seconds timeout = std::chrono::seconds(300)) {
  grpc::ClientContext ctx;
  CallRegistry::Guard guard(calls, &ctx);
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
  ctx.set_wait_for_ready(true);
  v1::PushAck ack;
  std::unique_ptr<grpc::ClientWriter<Chunk>> writer = open(&ctx, &ack);
  if (WriteChunked(writer.get(), std::move(first), data, chunk_bytes)) writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) return FromGrpcStatus(status);
  return PushResult{ack.version(), ack.duplicate(), ack.newest_version()};
}

}  // namespace hips

#endif  // HIPS_SERVICES_NET_PUSH_STREAM_H_
