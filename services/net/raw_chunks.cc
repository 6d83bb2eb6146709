#include "services/net/raw_chunks.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "glog/logging.h"

namespace hips {
namespace {

// Protobuf wire types.
constexpr uint32_t kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5;
constexpr uint32_t kDataField = 1, kHeaderField = 2;

void AppendVarint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void ReleaseOwner(void* owner) { delete static_cast<std::shared_ptr<const void>*>(owner); }

// Reads a message spread over slices, byte by byte or by ranges.
class SliceCursor {
 public:
  explicit SliceCursor(const std::vector<grpc::Slice>& slices) : slices_(slices) { Skip0(); }

  bool done() const { return slice_ == slices_.size(); }

  bool ReadByte(uint8_t* b) {
    if (done()) return false;
    *b = slices_[slice_].begin()[offset_];
    Advance(1);
    return true;
  }

  bool ReadVarint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      uint8_t b;
      if (!ReadByte(&b)) return false;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }

  // Calls fn(view) for the consecutive pieces of the next `n` bytes.
  template <typename Fn>
  bool Take(uint64_t n, Fn fn) {
    while (n > 0) {
      if (done()) return false;
      const grpc::Slice& s = slices_[slice_];
      const size_t here = std::min<uint64_t>(n, s.size() - offset_);
      fn(absl::string_view(reinterpret_cast<const char*>(s.begin()) + offset_, here));
      Advance(here);
      n -= here;
    }
    return true;
  }

 private:
  void Advance(size_t n) {
    offset_ += n;
    if (offset_ == slices_[slice_].size()) {
      ++slice_;
      offset_ = 0;
      Skip0();
    }
  }
  void Skip0() {
    while (slice_ < slices_.size() && slices_[slice_].size() == 0) ++slice_;
  }

  const std::vector<grpc::Slice>& slices_;
  size_t slice_ = 0;
  size_t offset_ = 0;
};

absl::Status Malformed(absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("malformed chunk message: ", why));
}

}  // namespace

std::vector<grpc::Slice> ReferenceChunks(absl::Span<const float> data, size_t chunk_bytes,
                                         std::shared_ptr<const void> owner) {
  return ReferenceChunks(
      absl::string_view(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float)),
      sizeof(float), chunk_bytes, std::move(owner));
}

std::vector<grpc::Slice> ReferenceChunks(absl::string_view payload, size_t element_bytes,
                                         size_t chunk_bytes, std::shared_ptr<const void> owner) {
  std::vector<grpc::Slice> slices;
  chunk_bytes = std::max(element_bytes, chunk_bytes - chunk_bytes % element_bytes);
  const size_t total = payload.size();
  char* bytes = const_cast<char*>(payload.data());
  for (size_t at = 0; at < total; at += chunk_bytes) {
    // gRPC never writes through a slice it was given to send.
    slices.emplace_back(bytes + at, std::min(chunk_bytes, total - at), &ReleaseOwner,
                        new std::shared_ptr<const void>(owner));
  }
  return slices;
}

grpc::ByteBuffer EncodeChunk(const std::string* header, const grpc::Slice* data) {
  std::string prefix;
  if (data != nullptr) {
    AppendVarint(kDataField << 3 | kLengthDelimited, &prefix);
    AppendVarint(data->size(), &prefix);
  }
  std::string suffix;
  if (header != nullptr) {
    AppendVarint(kHeaderField << 3 | kLengthDelimited, &suffix);
    AppendVarint(header->size(), &suffix);
    suffix.append(*header);
  }
  grpc::Slice slices[3];
  size_t n = 0;
  if (data != nullptr) {
    slices[n++] = grpc::Slice(prefix);
    slices[n++] = *data;
  }
  if (!suffix.empty()) slices[n++] = grpc::Slice(suffix);
  return grpc::ByteBuffer(slices, n);
}

grpc::ByteBuffer ChunkedPayload::Message(size_t i) const {
  return EncodeChunk(i == 0 ? &header : nullptr, chunks.empty() ? nullptr : &chunks[i]);
}

grpc::ByteBuffer SerializeMessage(const google::protobuf::MessageLite& message) {
  grpc::Slice slice(message.SerializeAsString());
  return grpc::ByteBuffer(&slice, 1);
}

bool ParseMessage(const grpc::ByteBuffer& buffer, google::protobuf::MessageLite* message) {
  std::vector<grpc::Slice> slices;
  if (!buffer.Dump(&slices).ok()) return false;
  std::string bytes;
  bytes.reserve(buffer.Length());
  for (const grpc::Slice& s : slices) {
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return message->ParseFromString(bytes);
}

absl::Status DecodeChunk(const grpc::ByteBuffer& message, ReceivedChunk* out) {
  *out = ReceivedChunk();
  if (!message.Dump(&out->slices).ok()) return Malformed("unreadable byte buffer");
  SliceCursor cursor(out->slices);
  bool has_data = false;
  while (!cursor.done()) {
    uint64_t key;
    if (!cursor.ReadVarint(&key)) return Malformed("truncated field key");
    const uint64_t field = key >> 3;
    const uint32_t type = key & 7;
    if (field == 0) return Malformed("field number 0");
    if ((field == kDataField || field == kHeaderField) && type != kLengthDelimited) {
      return Malformed(absl::StrCat("field ", field, " has wire type ", type));
    }
    uint64_t length = 0;
    switch (type) {
      case kVarint: {
        uint64_t ignored;
        if (!cursor.ReadVarint(&ignored)) return Malformed("truncated varint");
        continue;
      }
      case kFixed64:
        length = 8;
        break;
      case kFixed32:
        length = 4;
        break;
      case kLengthDelimited:
        if (!cursor.ReadVarint(&length)) return Malformed("truncated length");
        break;
      default:
        return Malformed(absl::StrCat("unsupported wire type ", type));
    }
    bool complete;
    if (field == kDataField) {
      if (has_data) return Malformed("data given twice");
      has_data = true;
      out->data_bytes = length;
      complete = cursor.Take(length, [out](absl::string_view v) { out->data.push_back(v); });
    } else if (field == kHeaderField) {
      // A repeated message field merges; hips senders write it once.
      out->has_header = true;
      complete = cursor.Take(
          length, [out](absl::string_view v) { out->header.append(v.data(), v.size()); });
    } else {
      complete = cursor.Take(length, [](absl::string_view) {});
    }
    if (!complete) return Malformed("truncated field");
  }
  return absl::OkStatus();
}

struct SliceRelease::State {
  absl::Notification released;
};

SliceRelease::SliceRelease() : state_(std::make_shared<State>()) {
  std::shared_ptr<State> state = state_;
  owner_ = std::shared_ptr<const void>(nullptr, [state](const void*) { state->released.Notify(); });
}

bool SliceRelease::Wait(absl::Duration timeout) {
  owner_.reset();
  return state_->released.WaitForNotificationWithTimeout(timeout);
}

void WaitForRelease(SliceRelease* release) {
  constexpr absl::Duration kBound = absl::Seconds(30);
  if (!release->Wait(kBound)) {
    LOG(ERROR) << "gRPC still holds a sent buffer " << kBound << " after its call ended";
  }
}

}  // namespace hips
