#ifndef HIPS_SERVICES_NET_CHUNKED_STREAM_H_
#define HIPS_SERVICES_NET_CHUNKED_STREAM_H_

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/types/span.h"
#include "services/core/chunk_codec.h"

// Streams of hips.v1 *Chunk messages (GradientChunk, AggregateChunk,
// WeightsChunk): the first message carries `header`, every message may carry
// a `data` slice of the flat float buffer, in order. Works with any gRPC
// reader or writer (client or server side).

namespace hips {

// Writes `first` (whose header the caller filled in) followed by the chunks
// of `data`; the first chunk rides in `first`. Returns false when the stream
// broke (the RPC's final status tells why).
template <typename Chunk, typename Writer>
bool WriteChunked(Writer* writer, Chunk first, absl::Span<const float> data,
                  size_t chunk_bytes) {
  ChunkSplitter split(data, chunk_bytes);
  if (split.num_chunks() == 0) return writer->Write(first);
  for (size_t i = 0; i < split.num_chunks(); ++i) {
    Chunk msg;
    if (i == 0) msg = std::move(first);
    const absl::string_view bytes = split.chunk(i);
    msg.set_data(bytes.data(), bytes.size());
    if (!writer->Write(msg)) return false;
  }
  return true;
}

// Reads a chunked stream. `expected_floats` is called once with the header
// and returns how many floats the receiver expects (or an error refusing the
// header). The returned buffer has exactly that many floats.
template <typename Chunk, typename Header, typename Reader>
absl::StatusOr<std::vector<float>> ReadChunked(
    Reader* reader, Header* header,
    const std::function<absl::StatusOr<int64_t>(const Header&)>& expected_floats) {
  Chunk msg;
  if (!reader->Read(&msg)) return absl::InvalidArgumentError("stream ended before its header");
  if (!msg.has_header()) return absl::InvalidArgumentError("first message carries no header");
  *header = msg.header();
  absl::StatusOr<int64_t> expected = expected_floats(*header);
  if (!expected.ok()) return expected.status();
  absl::StatusOr<ChunkAssembler> assembler =
      ChunkAssembler::Create(header->num_floats(), *expected);
  if (!assembler.ok()) return assembler.status();
  do {
    if (absl::Status s = assembler->Append(msg.data()); !s.ok()) return s;
  } while (reader->Read(&msg));
  return std::move(*assembler).Finish();
}

}  // namespace hips

#endif  // HIPS_SERVICES_NET_CHUNKED_STREAM_H_
