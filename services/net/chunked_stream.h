#ifndef HIPS_SERVICES_NET_CHUNKED_STREAM_H_
#define HIPS_SERVICES_NET_CHUNKED_STREAM_H_

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <memory>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "services/core/buffer_pool.h"
#include "services/core/chunk_codec.h"
#include "services/core/float_kernels.h"
#include "services/core/payloads.h"
#include "services/net/raw_chunks.h"

// Streams of hips.v1 *Chunk messages (GradientChunk, AggregateChunk,
// WeightsChunk) as raw grpc::ByteBuffers (raw_chunks.h): the first message
// carries `header`, every message may carry a `data` slice of the flat float
// buffer, in order. Works with any gRPC reader or writer of ByteBuffers
// (client or server side).

namespace hips {

// Writes the serialized `header` with the first of `chunks` (slices of the
// flat buffer, e.g. from ReferenceChunks), then the others. Returns false
// when the stream broke (the RPC's final status tells why).
template <typename Writer>
bool WriteChunked(Writer* writer, const std::string& header,
                  const std::vector<grpc::Slice>& chunks) {
  if (chunks.empty()) return writer->Write(EncodeChunk(&header, nullptr));
  for (size_t i = 0; i < chunks.size(); ++i) {
    if (!writer->Write(EncodeChunk(i == 0 ? &header : nullptr, &chunks[i]))) return false;
  }
  return true;
}

// Reads a chunked stream's first message and parses its header.
template <typename Header, typename Reader>
absl::Status ReadChunkHeader(Reader* reader, ReceivedChunk* first, Header* header) {
  grpc::ByteBuffer message;
  if (!reader->Read(&message)) return absl::InvalidArgumentError("stream ended before its header");
  if (absl::Status s = DecodeChunk(message, first); !s.ok()) return s;
  if (!first->has_header) return absl::InvalidArgumentError("first message carries no header");
  if (!header->ParseFromString(first->header)) {
    return absl::InvalidArgumentError("unparsable header");
  }
  return absl::OkStatus();
}

// Reads a chunked stream into one buffer (one copy, out of the received
// slices). `expected_floats` is called once with the header and returns how
// many floats the receiver expects (or an error refusing the header). The
// returned buffer has exactly that many floats. With `spares`, a kept
// buffer of that size is filled instead of a new one.
template <typename Header, typename Reader>
absl::StatusOr<std::vector<float>> ReadChunked(
    Reader* reader, Header* header,
    const std::function<absl::StatusOr<int64_t>(const Header&)>& expected_floats,
    BufferPool* spares = nullptr) {
  ReceivedChunk chunk;
  if (absl::Status s = ReadChunkHeader(reader, &chunk, header); !s.ok()) return s;
  absl::StatusOr<int64_t> expected = expected_floats(*header);
  if (!expected.ok()) return expected.status();
  absl::StatusOr<ChunkAssembler> assembler = ChunkAssembler::Create(
      header->num_floats(), *expected,
      spares == nullptr || header->num_floats() != *expected
          ? std::vector<float>()
          : spares->TakeIfKept(static_cast<size_t>(*expected)));
  if (!assembler.ok()) return assembler.status();
  grpc::ByteBuffer message;
  while (true) {
    if (absl::Status s = assembler->Append(chunk.data); !s.ok()) return s;
    if (!reader->Read(&message)) break;
    if (absl::Status s = DecodeChunk(message, &chunk); !s.ok()) return s;
  }
  return std::move(*assembler).Finish();
}

namespace chunked_internal {

// The loop both readers below share, from the first message (already
// decoded into `*chunk`, header parsed) to the end of the stream: checks
// that chunks hold whole elements and add up to `shape`, and hands each to
// take(chunk, offset in bytes). next() says where to decode the next one.
template <typename Reader, typename Next, typename Take>
absl::Status ReadPayloadChunks(Reader* reader, ReceivedChunk* chunk, const PayloadShape& shape,
                               Next next, Take take) {
  int64_t received = 0;
  grpc::ByteBuffer message;
  while (true) {
    if (chunk->data_bytes % shape.element_bytes != 0) {
      return absl::InvalidArgumentError(absl::StrCat("chunk of ", chunk->data_bytes,
                                                     " bytes is not a whole number of ",
                                                     shape.element_bytes, "-byte elements"));
    }
    if (received + static_cast<int64_t>(chunk->data_bytes) > shape.bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("stream carries more than the announced ", shape.bytes, " bytes"));
    }
    take(*chunk, received);
    received += static_cast<int64_t>(chunk->data_bytes);
    if (!reader->Read(&message)) break;
    chunk = next();
    if (absl::Status s = DecodeChunk(message, chunk); !s.ok()) return s;
  }
  if (received != shape.bytes) {
    return absl::InvalidArgumentError(absl::StrCat("stream ended after ", received, " of ",
                                                   shape.bytes, " announced bytes"));
  }
  return absl::OkStatus();
}

inline FloatPieces ChunkPieces(const ReceivedChunk& chunk) {
  FloatPieces pieces;
  for (absl::string_view piece : chunk.data) pieces.Append(piece);
  return pieces;
}

}  // namespace chunked_internal

// Reads a chunked stream without copying its payload: the returned pieces
// point into the slices gRPC received, which the returned owner keeps alive.
// `expected` is called once with the header; checks as ReadChunked.
template <typename Header, typename Reader>
absl::StatusOr<ReceivedValues> ReadChunkedInPlace(
    Reader* reader, Header* header,
    const std::function<absl::StatusOr<PayloadShape>(const Header&)>& expected) {
  // A deque: chunks never move once their data views exist (a small slice's
  // bytes may live inside the slice object itself).
  auto chunks = std::make_shared<std::deque<ReceivedChunk>>(1);
  if (absl::Status s = ReadChunkHeader(reader, &chunks->back(), header); !s.ok()) return s;
  absl::StatusOr<PayloadShape> shape = expected(*header);
  if (!shape.ok()) return shape.status();
  ReceivedValues out;
  uint32_t max_bits = 0;
  const bool floats = shape->element_bytes == sizeof(float);
  absl::Status read = chunked_internal::ReadPayloadChunks(
      reader, &chunks->back(), *shape, [&chunks] { return &chunks->emplace_back(); },
      [&](const ReceivedChunk& chunk, int64_t) {
        const FloatPieces chunk_values = chunked_internal::ChunkPieces(chunk);
        for (absl::string_view piece : chunk_values.pieces()) out.values.bytes.Append(piece);
        // float32 payloads: the largest magnitude (and so finiteness) is
        // found chunk by chunk while the next chunks arrive.
        if (floats) max_bits = std::max(max_bits, MaxAbsBits(chunk_values));
      });
  if (!read.ok()) return read;
  if (floats) out.values.max_abs_bits = max_bits;
  out.owner = std::move(chunks);
  return out;
}

// Like ReadChunkedInPlace, but a float32 payload is written into `*dense`
// (resized to it; pass a spare buffer of that size to avoid allocating),
// each value multiplied by scale(header), chunk by chunk while the chunk is
// still in cache, and each chunk's slices are released at once. The
// returned values view `*dense`, carry their largest magnitude (after
// scaling) and are marked `scaled`. Compressed and empty payloads stay in
// place as with ReadChunkedInPlace (`*dense` untouched).
template <typename Header, typename Reader>
absl::StatusOr<ReceivedValues> ReadChunkedScaled(
    Reader* reader, Header* header,
    const std::function<absl::StatusOr<PayloadShape>(const Header&)>& expected,
    const std::function<float(const Header&)>& scale, std::vector<float>* dense) {
  ReceivedChunk chunk;
  if (absl::Status s = ReadChunkHeader(reader, &chunk, header); !s.ok()) return s;
  absl::StatusOr<PayloadShape> shape = expected(*header);
  if (!shape.ok()) return shape.status();
  if (shape->element_bytes != sizeof(float) || shape->bytes == 0) {
    // Compressed (or empty: an aggregate of no gradients): read in place,
    // starting from the chunk already decoded; `*dense` stays as it was.
    auto chunks = std::make_shared<std::deque<ReceivedChunk>>();
    chunks->push_back(std::move(chunk));
    ReceivedValues out;
    absl::Status read = chunked_internal::ReadPayloadChunks(
        reader, &chunks->back(), *shape, [&chunks] { return &chunks->emplace_back(); },
        [&out](const ReceivedChunk& c, int64_t) {
          for (absl::string_view piece : c.data) out.values.bytes.Append(piece);
        });
    if (!read.ok()) return read;
    out.owner = std::move(chunks);
    return out;
  }
  const float factor = scale(*header);
  dense->resize(static_cast<size_t>(shape->bytes) / sizeof(float));
  float* out = dense->data();
  uint32_t max_bits = 0;
  absl::Status read = chunked_internal::ReadPayloadChunks(
      reader, &chunk, *shape, [&chunk] { return &chunk; },
      [&](const ReceivedChunk& c, int64_t offset) {
        float* into = out + offset / static_cast<int64_t>(sizeof(float));
        chunked_internal::ChunkPieces(c).ForEachRun(
            [&](size_t first, const char* bytes, size_t n) {
              max_bits = std::max(max_bits, ScaleRunWithMaxBits(into + first, bytes, n, factor));
            });
      });
  if (!read.ok()) return read;
  ReceivedValues result;
  result.values = EncodedValues(absl::MakeConstSpan(*dense));
  result.values.max_abs_bits = max_bits;
  result.scaled = true;
  return result;
}

}  // namespace hips

#endif  // HIPS_SERVICES_NET_CHUNKED_STREAM_H_
