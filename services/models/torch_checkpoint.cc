// The checkpoint codec: one dict through torch::pickle_save / pickle_load,
// the format Python's torch.load reads. Includes LibTorch (only the
// serialization headers), so it lives in hips::model.

#include <torch/serialize.h>
#include <zlib.h>

#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "services/models/checkpoint_codec.h"

namespace hips {
namespace {

using GenericDict = c10::impl::GenericDict;

// LibTorch 1.13's unpickler is not memory-safe on damaged input: a single
// flipped byte in the pickle can corrupt the heap instead of throwing. So the
// bytes are verified before it sees them. pickle_save writes a zip archive,
// which ends with the 22-byte end-of-central-directory record whose last
// field is the length of the archive comment (0); the sealed file carries
// "hips-crc32 <8 hex digits>" as that comment: the CRC-32 of every byte
// before the comment. A comment is plain zip, so torch.load and Python's
// zipfile read the file as before.
constexpr size_t kEndRecordSize = 22;
constexpr absl::string_view kEndRecordSignature("PK\x05\x06", 4);
constexpr absl::string_view kCommentPrefix = "hips-crc32 ";
constexpr size_t kCommentSize = kCommentPrefix.size() + 8;

uint32_t Crc32(absl::string_view bytes) {
  return static_cast<uint32_t>(
      crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data()), bytes.size()));
}

size_t CommentLength(absl::string_view end_record) {
  return static_cast<unsigned char>(end_record[20]) |
         static_cast<size_t>(static_cast<unsigned char>(end_record[21])) << 8;
}

absl::StatusOr<std::string> Seal(const std::vector<char>& archive) {
  std::string bytes(archive.begin(), archive.end());
  if (bytes.size() < kEndRecordSize ||
      !absl::StartsWith(absl::string_view(bytes).substr(bytes.size() - kEndRecordSize),
                        kEndRecordSignature) ||
      CommentLength(absl::string_view(bytes).substr(bytes.size() - kEndRecordSize)) != 0) {
    return absl::InternalError("pickle_save wrote an archive without a plain zip ending");
  }
  bytes[bytes.size() - 2] = static_cast<char>(kCommentSize & 0xff);
  bytes[bytes.size() - 1] = static_cast<char>(kCommentSize >> 8);
  const uint32_t crc = Crc32(bytes);
  absl::StrAppend(&bytes, kCommentPrefix, absl::Hex(crc, absl::kZeroPad8));
  return bytes;
}

absl::Status CheckSeal(absl::string_view bytes) {
  if (bytes.size() < kEndRecordSize + kCommentSize) {
    return absl::DataLossError(
        absl::StrCat("a checkpoint of ", bytes.size(), " bytes is truncated"));
  }
  const absl::string_view body = bytes.substr(0, bytes.size() - kCommentSize);
  absl::string_view comment = bytes.substr(body.size());
  const absl::string_view end_record = body.substr(body.size() - kEndRecordSize);
  uint32_t stored;
  if (!absl::StartsWith(end_record, kEndRecordSignature) ||
      CommentLength(end_record) != kCommentSize || !absl::ConsumePrefix(&comment, kCommentPrefix) ||
      !absl::SimpleHexAtoi(comment, &stored)) {
    return absl::DataLossError("checkpoint does not end with its CRC (truncated, or not sealed)");
  }
  if (const uint32_t computed = Crc32(body); computed != stored) {
    return absl::DataLossError(absl::StrCat("checkpoint file CRC mismatch: stored ",
                                            absl::Hex(stored), ", computed ", absl::Hex(computed)));
  }
  return absl::OkStatus();
}

// A tensor over `data` without a copy; the caller keeps `data` alive.
torch::Tensor Borrow(const float* data, const std::vector<int64_t>& shape) {
  return torch::from_blob(const_cast<float*>(data), shape, torch::kFloat);
}

// {str: Any}, the outer dict and the optimizer's (values of several types).
GenericDict MixedDict() { return GenericDict(c10::StringType::get(), c10::AnyType::get()); }

c10::Dict<std::string, int64_t> IntDict(const std::map<std::string, int64_t>& values) {
  c10::Dict<std::string, int64_t> dict;
  for (const auto& [key, value] : values) dict.insert(key, value);
  return dict;
}

c10::Dict<std::string, c10::List<int64_t>> IntListDict(
    const std::map<std::string, std::vector<int64_t>>& values) {
  c10::Dict<std::string, c10::List<int64_t>> dict;
  for (const auto& [key, list] : values) dict.insert(key, c10::List<int64_t>(list));
  return dict;
}

// Reads typed fields of a decoded dict. The first missing or mistyped field
// is remembered in status(); later reads return empty values.
class DictReader {
 public:
  DictReader(GenericDict dict, std::string where)
      : dict_(std::move(dict)), where_(std::move(where)) {}

  int64_t Int(const char* key) {
    const c10::IValue* v = Find(key, "an int", &c10::IValue::isInt);
    return v == nullptr ? 0 : v->toInt();
  }
  bool Bool(const char* key) {
    const c10::IValue* v = Find(key, "a bool", &c10::IValue::isBool);
    return v != nullptr && v->toBool();
  }
  double Double(const char* key) {
    const c10::IValue* v = Find(key, "a float", &c10::IValue::isDouble);
    return v == nullptr ? 0 : v->toDouble();
  }
  std::string String(const char* key) {
    const c10::IValue* v = Find(key, "a string", &c10::IValue::isString);
    return v == nullptr ? std::string() : v->toStringRef();
  }
  GenericDict Dict(const char* key) {
    const c10::IValue* v = Find(key, "a dict", &c10::IValue::isGenericDict);
    return v == nullptr ? MixedDict() : v->toGenericDict();
  }
  // {str: int} into `out`.
  void Ints(const char* key, std::map<std::string, int64_t>* out) {
    for (const auto& entry : Dict(key)) {
      if (!entry.key().isString() || !entry.value().isInt()) {
        Fail(absl::StrCat(where_, key, " is not a {str: int} dict"));
        return;
      }
      (*out)[entry.key().toStringRef()] = entry.value().toInt();
    }
  }
  // {str: [int]} into `out`.
  void IntLists(const char* key, std::map<std::string, std::vector<int64_t>>* out) {
    for (const auto& entry : Dict(key)) {
      if (!entry.key().isString() || !entry.value().isIntList()) {
        Fail(absl::StrCat(where_, key, " is not a {str: [int]} dict"));
        return;
      }
      (*out)[entry.key().toStringRef()] = entry.value().toIntVector();
    }
  }
  // An optional field is there.
  bool Has(const char* key) const { return dict_.contains(key); }
  void Fail(std::string message) {
    if (status_.ok()) status_ = absl::DataLossError(std::move(message));
  }
  const absl::Status& status() const { return status_; }

 private:
  const c10::IValue* Find(const char* key, const char* type, bool (c10::IValue::*is)() const) {
    if (!status_.ok()) return nullptr;
    const auto it = dict_.find(key);
    if (it == dict_.end()) {
      Fail(absl::StrCat("checkpoint has no ", where_, key));
      return nullptr;
    }
    // GenericDict iterators hand out values by reference into the dict,
    // which outlives every use here.
    const c10::IValue& value = it->value();
    if (!(value.*is)()) {
      Fail(absl::StrCat("checkpoint field ", where_, key, " is not ", type));
      return nullptr;
    }
    return &value;
  }

  GenericDict dict_;
  const std::string where_;  // "" or "optimizer." for messages
  absl::Status status_;
};

// The float32 elements of a decoded tensor, flat.
absl::Status AppendFloats(const c10::IValue& value, const std::string& name,
                          std::vector<float>* out, std::vector<int64_t>* shape) {
  if (!value.isTensor() || value.toTensor().scalar_type() != torch::kFloat) {
    return absl::DataLossError(absl::StrCat("checkpoint tensor ", name, " is not float32"));
  }
  const torch::Tensor t = value.toTensor().contiguous();
  const float* data = t.data_ptr<float>();
  out->insert(out->end(), data, data + t.numel());
  if (shape != nullptr) *shape = t.sizes().vec();
  return absl::OkStatus();
}

// The weights of a checkpoint's dict into `c` (weights, layout): every
// tensor float32, the buffers among them named by the optional "buffers"
// list (absent before buffers existed).
absl::Status ReadWeights(const GenericDict& dict, const GenericDict& weights, Checkpoint* c) {
  std::set<std::string> buffer_names;
  if (const auto it = dict.find("buffers"); it != dict.end()) {
    const c10::IValue& list = it->value();
    if (!list.isList()) return absl::DataLossError("checkpoint field buffers is not a list");
    for (const c10::IValue& name : list.toListRef()) {
      if (!name.isString())
        return absl::DataLossError("checkpoint field buffers holds a non-string");
      buffer_names.insert(name.toStringRef());
    }
  }
  std::vector<TensorSpec> specs;
  for (const auto& entry : weights) {
    if (!entry.key().isString()) return absl::DataLossError("a weight without a name");
    TensorSpec spec{entry.key().toStringRef(), {}};
    spec.buffer = buffer_names.erase(spec.name) > 0;
    if (absl::Status s = AppendFloats(entry.value(), spec.name, &c->weights, &spec.shape);
        !s.ok()) {
      return s;
    }
    specs.push_back(std::move(spec));
  }
  if (!buffer_names.empty()) {
    return absl::DataLossError(
        absl::StrCat("checkpoint buffer '", *buffer_names.begin(), "' is not among its weights"));
  }
  absl::StatusOr<ModelLayout> layout = ModelLayout::Create(std::move(specs));
  if (!layout.ok()) return absl::DataLossError(layout.status().message());
  c->layout = *std::move(layout);
  return absl::OkStatus();
}

absl::StatusOr<Checkpoint> FromDict(GenericDict dict) {
  DictReader reader(std::move(dict), "");
  if (const std::string format = reader.String("format");
      reader.status().ok() && format != kCheckpointFormat) {
    return absl::DataLossError(
        absl::StrCat("checkpoint format '", format, "', expected '", kCheckpointFormat, "'"));
  }
  Checkpoint c;
  c.version = reader.Int("version");
  c.samples_applied = reader.Int("samples_applied");
  c.training_done = reader.Bool("training_done");
  const std::string mode = reader.String("mode");
  c.mode.staleness = reader.Int("staleness");
  c.mode_since = reader.Int("mode_since");
  c.created_unix_micros = reader.Int("created_unix_micros");
  reader.Ints("data_positions", &c.data_positions);
  reader.Ints("sequences", &c.sequences);
  if (reader.Has("rollbacks")) {  // (a run that diverged)
    c.lr_scale = reader.Double("lr_scale");
    c.rollbacks = reader.Int("rollbacks");
    c.diverged_version = reader.Int("diverged_version");
    c.diverged_reason = reader.String("diverged_reason");
  }
  if (reader.Has("forgotten_before")) c.forgotten_before = reader.Int("forgotten_before");
  if (reader.Has("incarnations")) reader.IntLists("incarnations", &c.incarnations);
  const int64_t checksum = reader.Int("checksum");
  const GenericDict weights = reader.Dict("weights");
  DictReader optimizer(reader.Dict("optimizer"), "optimizer.");
  c.optimizer.name = optimizer.String("name");
  optimizer.Ints("steps", &c.optimizer.steps);
  const GenericDict buffers = optimizer.Dict("state");
  if (!reader.status().ok()) return reader.status();
  if (!optimizer.status().ok()) return optimizer.status();

  absl::StatusOr<Mode> parsed_mode = ParseMode(mode);
  if (!parsed_mode.ok()) return absl::DataLossError(parsed_mode.status().message());
  c.mode.mode = *parsed_mode;
  if (c.mode.mode == Mode::kFedAvg) {  // (only fedavg checkpoints have them)
    c.mode.local_steps = reader.Int("local_steps");
    c.mode.participation = reader.Double("participation");
    if (reader.Has("edge_rounds")) c.mode.edge_rounds = reader.Int("edge_rounds");
    if (reader.Has("proximal_mu")) c.mode.proximal_mu = reader.Double("proximal_mu");
    if (!reader.status().ok()) return reader.status();
  }
  if (reader.Has("hq_buffer")) {  // (only a run with HQ's buffer has them)
    c.mode.hq_buffer = reader.Int("hq_buffer");
    if (reader.Has("staleness_exponent")) {
      c.mode.staleness_weighting = StalenessWeighting::kPolynomial;
      c.mode.staleness_exponent = reader.Double("staleness_exponent");
    }
    if (!reader.status().ok()) return reader.status();
  }
  if (absl::Status s = ValidateModeConfig(c.mode); !s.ok()) {
    return absl::DataLossError(s.message());
  }

  if (absl::Status s = ReadWeights(dict, weights, &c); !s.ok()) return s;

  for (const auto& entry : buffers) {
    if (!entry.key().isString()) return absl::DataLossError("an optimizer buffer without a name");
    const std::string& key = entry.key().toStringRef();
    if (absl::Status s = AppendFloats(entry.value(), key, &c.optimizer.buffers[key], nullptr);
        !s.ok()) {
      return s;
    }
  }

  const uint32_t computed = ChecksumOf(c);
  if (checksum != static_cast<int64_t>(computed)) {
    return absl::DataLossError(
        absl::StrCat("checkpoint checksum mismatch: stored ", checksum, ", computed ", computed));
  }
  return c;
}

}  // namespace

absl::StatusOr<std::string> EncodeCheckpoint(const Checkpoint& c) {
  const ModelLayout& layout = c.layout;
  if (static_cast<int64_t>(c.weights.size()) != layout.num_floats()) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint has ", c.weights.size(),
                                                   " weights, its layout ", layout.num_floats()));
  }
  std::map<std::string, const TensorSpec*> specs;
  for (const TensorSpec& spec : layout.tensors()) specs[spec.name] = &spec;
  // Each buffer is saved in its tensor's shape, so Python sees what
  // torch.optim would hold.
  std::map<std::string, const TensorSpec*> buffer_specs;
  for (const auto& [key, values] : c.optimizer.buffers) {
    const auto spec = specs.find(key.substr(0, key.rfind('/')));
    if (key.find('/') == std::string::npos || spec == specs.end() ||
        spec->second->NumElements() != static_cast<int64_t>(values.size())) {
      return absl::InvalidArgumentError(absl::StrCat("optimizer buffer '", key, "' (",
                                                     values.size(), " floats) fits no tensor of ",
                                                     layout.DebugString()));
    }
    buffer_specs[key] = spec->second;
  }
  try {
    c10::Dict<std::string, torch::Tensor> weights;
    c10::List<std::string> buffer_names;
    for (size_t i = 0; i < layout.tensors().size(); ++i) {
      const TensorSpec& spec = layout.tensors()[i];
      weights.insert(spec.name, Borrow(c.weights.data() + layout.offset(i), spec.shape));
      if (spec.buffer) buffer_names.push_back(spec.name);
    }
    c10::Dict<std::string, torch::Tensor> buffers;
    for (const auto& [key, values] : c.optimizer.buffers) {
      buffers.insert(key, Borrow(values.data(), buffer_specs[key]->shape));
    }
    GenericDict optimizer = MixedDict();
    optimizer.insert("name", c.optimizer.name);
    optimizer.insert("state", buffers);
    optimizer.insert("steps", IntDict(c.optimizer.steps));

    GenericDict dict = MixedDict();
    dict.insert("format", std::string(kCheckpointFormat));
    dict.insert("version", c.version);
    dict.insert("samples_applied", c.samples_applied);
    dict.insert("training_done", c.training_done);
    dict.insert("mode", std::string(ModeName(c.mode.mode)));
    dict.insert("staleness", c.mode.staleness);
    if (c.mode.mode == Mode::kFedAvg) {
      dict.insert("local_steps", c.mode.local_steps);
      dict.insert("participation", c.mode.participation);
      if (c.mode.edge_rounds > 1) dict.insert("edge_rounds", c.mode.edge_rounds);
      if (c.mode.proximal_mu > 0) dict.insert("proximal_mu", c.mode.proximal_mu);
    }
    if (c.mode.hq_buffer > 0) {
      dict.insert("hq_buffer", c.mode.hq_buffer);
      if (c.mode.staleness_weighting == StalenessWeighting::kPolynomial) {
        dict.insert("staleness_exponent", c.mode.staleness_exponent);
      }
    }
    dict.insert("mode_since", c.mode_since);
    dict.insert("weights", weights);
    if (!buffer_names.empty()) dict.insert("buffers", buffer_names);
    dict.insert("optimizer", optimizer);
    dict.insert("data_positions", IntDict(c.data_positions));
    dict.insert("sequences", IntDict(c.sequences));
    dict.insert("created_unix_micros", c.created_unix_micros);
    if (c.rollbacks != 0 || c.lr_scale != 1.0 || c.diverged_version >= 0) {
      dict.insert("lr_scale", c.lr_scale);
      dict.insert("rollbacks", c.rollbacks);
      dict.insert("diverged_version", c.diverged_version);
      dict.insert("diverged_reason", c.diverged_reason);
    }
    if (c.forgotten_before > 0) dict.insert("forgotten_before", c.forgotten_before);
    if (!c.incarnations.empty()) dict.insert("incarnations", IntListDict(c.incarnations));
    dict.insert("checksum", static_cast<int64_t>(ChecksumOf(c)));
    return Seal(torch::pickle_save(dict));
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("encoding a checkpoint: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("encoding a checkpoint: ", e.what()));
  }
}

absl::StatusOr<Checkpoint> DecodeCheckpoint(absl::string_view bytes) {
  if (absl::Status s = CheckSeal(bytes); !s.ok()) return s;
  // Intact bytes can still be another program's pickle: that surfaces as an
  // exception or as missing and mistyped fields.
  try {
    const c10::IValue value = torch::pickle_load(std::vector<char>(bytes.begin(), bytes.end()));
    if (!value.isGenericDict()) return absl::DataLossError("checkpoint is not a dict");
    return FromDict(value.toGenericDict());
  } catch (const c10::Error& e) {
    return absl::DataLossError(
        absl::StrCat("undecodable checkpoint: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::DataLossError(absl::StrCat("undecodable checkpoint: ", e.what()));
  }
}

}  // namespace hips
