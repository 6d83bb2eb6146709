#ifndef HIPS_SERVICES_NET_RAW_CHUNKS_H_
#define HIPS_SERVICES_NET_RAW_CHUNKS_H_

#include <google/protobuf/message_lite.h>
#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

// Chunk messages (hips.v1 GradientChunk, AggregateChunk, WeightsChunk) as raw
// grpc::ByteBuffers, without protobuf copies of the bulk bytes
// (docs/performance.md). On the wire they are ordinary protobuf messages
// (`bytes data = 1; Header header = 2;`), so peers using the generated stubs
// read and write them as usual:
//   sending, a message is a few bytes of field keys and lengths, then a
//     slice that points at the sender's own float buffer (no copy; the slice
//     holds an owner that keeps the buffer alive until gRPC lets go of it);
//   receiving, the data field is a list of views into the slices gRPC read
//     from the socket (no copy until the receiver consumes them).

namespace hips {

// Slices of `data`, `chunk_bytes` each (the last may be shorter), that point
// into it; every slice holds a reference to `owner` until gRPC releases it.
// Zero floats give zero slices.
std::vector<grpc::Slice> ReferenceChunks(absl::Span<const float> data, size_t chunk_bytes,
                                         std::shared_ptr<const void> owner);
// The same for a payload of `element_bytes`-sized elements: chunks are
// `chunk_bytes` rounded down to whole elements (at least one).
std::vector<grpc::Slice> ReferenceChunks(absl::string_view payload, size_t element_bytes,
                                         size_t chunk_bytes, std::shared_ptr<const void> owner);

// One chunk message: `header` a serialized header message (null: no header
// field), `data` the chunk's bytes (null: no data field).
grpc::ByteBuffer EncodeChunk(const std::string* header, const grpc::Slice* data);

// A whole chunked stream to send: the serialized header, which rides on the
// first message, and the payload's slices (from ReferenceChunks, pointing
// at the sender's buffer). A stream of no payload is one message with the
// header only.
struct ChunkedPayload {
  std::string header;
  std::vector<grpc::Slice> chunks;

  size_t messages() const { return chunks.empty() ? 1 : chunks.size(); }
  // Message i of messages().
  grpc::ByteBuffer Message(size_t i) const;
};

// A small message (a request, an ack) as a ByteBuffer, and back: for the
// methods whose bulk messages are raw ByteBuffers. Parse returns false for
// bytes that are not such a message.
grpc::ByteBuffer SerializeMessage(const google::protobuf::MessageLite& message);
bool ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message);

// A chunk message as received. `data` views point into `slices`, which the
// struct keeps alive.
struct ReceivedChunk {
  std::vector<grpc::Slice> slices;
  bool has_header = false;
  std::string header;  // the serialized header message
  std::vector<absl::string_view> data;
  size_t data_bytes = 0;
};

// Splits `message` into its fields. INVALID_ARGUMENT for bytes that are not
// a protobuf message, a data or header field of the wrong wire type, or a
// data field given twice. Unknown fields are skipped.
absl::Status DecodeChunk(const grpc::ByteBuffer& message, ReceivedChunk* out);

// Waits until every slice that referenced a buffer is released: a caller
// that reuses its buffer after a call (a worker's gradient) creates one per
// call and passes owner() to ReferenceChunks.
class SliceRelease {
 public:
  SliceRelease();
  std::shared_ptr<const void> owner() const { return owner_; }
  // Drops this object's own reference and waits for the slices' (gRPC drops
  // them once the bytes are on the socket or the call is gone). False on
  // timeout.
  bool Wait(absl::Duration timeout);

 private:
  struct State;
  std::shared_ptr<State> state_;
  std::shared_ptr<const void> owner_;
};

// release->Wait with a generous bound, logging an error if gRPC still holds
// the slices after it (the call is over then; the buffer is reused anyway).
void WaitForRelease(SliceRelease* release);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_RAW_CHUNKS_H_
