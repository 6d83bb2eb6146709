#ifndef HIPS_SERVICES_NET_CHUNK_RECEIVER_H_
#define HIPS_SERVICES_NET_CHUNK_RECEIVER_H_

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "services/numeric/buffer_pool.h"
#include "services/net/raw_chunks.h"
#include "services/numeric/chunk_codec.h"
#include "services/numeric/float_kernels.h"
#include "services/types/payloads.h"

// Receivers of the hips.v1 *Chunk streams (GradientChunk, AggregateChunk,
// WeightsChunk) as raw grpc::ByteBuffers (raw_chunks.h), fed message by
// message as they arrive: a callback server gets them one at a time, a
// blocking client loops. The first message carries the header; any message
// may carry the next data slice of the payload. Every receiver checks the
// stream against what its header announced: whole elements, no more bytes
// than announced and, in Finish, no fewer; a failed check refuses the
// stream (INVALID_ARGUMENT, or the header check's own status) and the
// receiver must not be fed again. Not thread-safe: one per stream.

namespace hips {
namespace chunked_internal {

// What every receiver checks, from the header to the last chunk.
template <typename Header>
class ChunkStream {
 public:
  // Decodes `message` into `*chunk`; the first one must carry the header,
  // which is parsed into header().
  absl::Status Decode(const grpc::ByteBuffer& message, ReceivedChunk* chunk) {
    if (absl::Status s = DecodeChunk(message, chunk); !s.ok()) return s;
    if (started_) return absl::OkStatus();
    started_ = true;
    if (!chunk->has_header)
      return absl::InvalidArgumentError("header: the first message carries none");
    if (!header_.ParseFromString(chunk->header)) {
      return absl::InvalidArgumentError("header: unparsable");
    }
    return absl::OkStatus();
  }

  // Accounts for `chunk`'s data against `shape`: returns its byte offset in
  // the payload.
  absl::StatusOr<int64_t> Account(const ReceivedChunk& chunk, const PayloadShape& shape) {
    const int64_t bytes = static_cast<int64_t>(chunk.data_bytes);
    if (bytes % static_cast<int64_t>(shape.element_bytes) != 0) {
      return absl::InvalidArgumentError(absl::StrCat("data: a chunk of ", bytes,
                                                     " bytes is not a whole number of ",
                                                     shape.element_bytes, "-byte elements"));
    }
    if (received_ + bytes > shape.bytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("data: the stream carries more than the announced ", shape.bytes, " bytes"));
    }
    const int64_t offset = received_;
    received_ += bytes;
    return offset;
  }

  // OK once the stream had its header and every announced byte.
  absl::Status Complete(const PayloadShape& shape) const {
    if (!started_) return absl::InvalidArgumentError("header: the stream ended before it");
    if (received_ != shape.bytes) {
      return absl::InvalidArgumentError(absl::StrCat("data: the stream ended after ", received_,
                                                     " of ", shape.bytes, " announced bytes"));
    }
    return absl::OkStatus();
  }

  bool started() const { return started_; }
  const Header& header() const { return header_; }

 private:
  bool started_ = false;
  Header header_;
  int64_t received_ = 0;
};

}  // namespace chunked_internal

// The receiving side of a push (PushGradient, PushAggregate). `expected` is
// called once, with the header, and says what payload to expect (or refuses
// the header). A float32 payload is written into `*dense` (resized to it;
// a spare buffer of that size avoids allocating), each value multiplied by
// scale(header), chunk by chunk while the chunk is still in cache, and each
// chunk's slices are released at once; the values then view `*dense`, carry
// their largest magnitude (after scaling) and are marked `scaled`.
// Compressed and empty payloads are kept in place (the slices stay alive
// with the values' owner; `*dense` is untouched).
template <typename Header>
class PushReceiver {
 public:
  using ShapeFn = std::function<absl::StatusOr<PayloadShape>(const Header&)>;
  using ScaleFn = std::function<float(const Header&)>;

  // `dense` must outlive the receiver and the values it returns. With
  // `squares`, float32 values also carry the sum of their squares
  // (EncodedValues::squared_norm: an aggregator that clips norms).
  PushReceiver(ShapeFn expected, ScaleFn scale, std::vector<float>* dense, bool squares = false)
      : expected_(std::move(expected)),
        scale_(std::move(scale)),
        dense_(dense),
        squares_wanted_(squares) {}

  absl::Status Add(const grpc::ByteBuffer& message) {
    ReceivedChunk chunk;
    if (absl::Status s = stream_.Decode(message, &chunk); !s.ok()) return s;
    if (!shape_.has_value()) {
      absl::StatusOr<PayloadShape> shape = expected_(stream_.header());
      if (!shape.ok()) return shape.status();
      shape_ = *shape;
      in_place_ = shape_->element_bytes != sizeof(float) || shape_->bytes == 0;
      if (in_place_) {
        kept_ = std::make_shared<std::deque<ReceivedChunk>>();
      } else {
        factor_ = scale_(stream_.header());
        dense_->resize(static_cast<size_t>(shape_->bytes) / sizeof(float));
      }
    }
    absl::StatusOr<int64_t> offset = stream_.Account(chunk, *shape_);
    if (!offset.ok()) return offset.status();
    if (in_place_) {
      // A deque: chunks never move once their views exist (a small slice's
      // bytes may live inside the slice object itself).
      ReceivedChunk& kept = kept_->emplace_back(std::move(chunk));
      for (absl::string_view piece : kept.data) values_.bytes.Append(piece);
      return absl::OkStatus();
    }
    float* into = dense_->data() + *offset / static_cast<int64_t>(sizeof(float));
    FloatPieces pieces;
    for (absl::string_view piece : chunk.data) pieces.Append(piece);
    pieces.ForEachRun([&](size_t first, const char* bytes, size_t n) {
      max_bits_ = std::max(max_bits_, ScaleRunWithMaxBits(into + first, bytes, n, factor_));
    });
    // While the chunk is in cache: the sum of squares bounded influence
    // needs, off the admission path, over whole blocks of the buffer (not
    // the transport's slices), so the same values give the same sum.
    if (squares_wanted_) SumSquaresTo((*offset + chunk.data_bytes) / sizeof(float));
    return absl::OkStatus();
  }

  absl::StatusOr<ReceivedValues> Finish() {
    if (absl::Status s = stream_.Complete(shape_.value_or(PayloadShape{0, 1})); !s.ok()) return s;
    ReceivedValues out;
    if (in_place_) {
      out.values = std::move(values_);
      out.owner = std::move(kept_);
      return out;
    }
    out.values = EncodedValues(absl::MakeConstSpan(*dense_));
    out.values.max_abs_bits = max_bits_;
    if (squares_wanted_) {
      SumSquaresTo(dense_->size());
      if (squared_to_ < dense_->size()) {
        squares_ += SquaredNormOfRun(reinterpret_cast<const char*>(dense_->data() + squared_to_),
                                     dense_->size() - squared_to_);
      }
      out.values.squared_norm = squares_;
    }
    out.scaled = true;
    return out;
  }

  bool has_header() const { return stream_.started(); }
  const Header& header() const { return stream_.header(); }

 private:
  // Adds the squares of every whole kSquaresBlock of *dense_ below `end`
  // not yet in squares_: SquaredNormOfRun over the whole buffer, in parts.
  void SumSquaresTo(size_t end) {
    while (squared_to_ + kSquaresBlock <= end) {
      squares_ += SquaredNormOfRun(reinterpret_cast<const char*>(dense_->data() + squared_to_),
                                   kSquaresBlock);
      squared_to_ += kSquaresBlock;
    }
  }

  const ShapeFn expected_;
  const ScaleFn scale_;
  std::vector<float>* const dense_;
  const bool squares_wanted_;
  chunked_internal::ChunkStream<Header> stream_;
  std::optional<PayloadShape> shape_;
  bool in_place_ = false;
  float factor_ = 1.0f;
  uint32_t max_bits_ = 0;
  double squares_ = 0;
  size_t squared_to_ = 0;  // floats of *dense_ in squares_ (whole blocks)
  std::shared_ptr<std::deque<ReceivedChunk>> kept_;
  EncodedValues values_;
};

// A float32 payload copied into one buffer as it arrives (the weights a
// client pulls). `expected_floats` is called once with the header and says
// how many floats the receiver expects (or refuses the header); the buffer
// has exactly that many. With `spares`, a kept buffer of that size is
// filled instead of a new one.
template <typename Header>
class AssemblingReceiver {
 public:
  using FloatsFn = std::function<absl::StatusOr<int64_t>(const Header&)>;

  explicit AssemblingReceiver(FloatsFn expected_floats, BufferPool* spares = nullptr)
      : expected_floats_(std::move(expected_floats)), spares_(spares) {}

  absl::Status Add(const grpc::ByteBuffer& message) {
    ReceivedChunk chunk;
    if (absl::Status s = stream_.Decode(message, &chunk); !s.ok()) return s;
    if (!assembler_.has_value()) {
      const Header& header = stream_.header();
      absl::StatusOr<int64_t> expected = expected_floats_(header);
      if (!expected.ok()) return expected.status();
      absl::StatusOr<ChunkAssembler> assembler =
          ChunkAssembler::Create(header.num_floats(), *expected,
                                 spares_ == nullptr || header.num_floats() != *expected
                                     ? std::vector<float>()
                                     : spares_->TakeIfKept(static_cast<size_t>(*expected)));
      if (!assembler.ok()) return assembler.status();
      assembler_ = *std::move(assembler);
    }
    return assembler_->Append(chunk.data);
  }

  absl::StatusOr<std::vector<float>> Finish() {
    if (!assembler_.has_value())
      return absl::InvalidArgumentError("header: the stream ended before it");
    return std::move(*assembler_).Finish();
  }

  bool has_header() const { return stream_.started(); }
  const Header& header() const { return stream_.header(); }

 private:
  const FloatsFn expected_floats_;
  BufferPool* const spares_;
  chunked_internal::ChunkStream<Header> stream_;
  std::optional<ChunkAssembler> assembler_;
};

}  // namespace hips

#endif  // HIPS_SERVICES_NET_CHUNK_RECEIVER_H_
