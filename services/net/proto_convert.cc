#include "services/net/proto_convert.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "services/core/gradient_accumulator.h"

namespace hips {
namespace {

absl::Status ValidateId(const std::string& id, const char* what) {
  if (id.empty() || id.size() > kMaxIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must have 1 to ", kMaxIdLength, " characters"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCommon(int64_t version, int64_t samples, double loss_sum,
                            int64_t num_floats) {
  if (version < 0) return absl::InvalidArgumentError(absl::StrCat("negative version ", version));
  if (samples <= 0 || samples > GradientAccumulator::kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat("sample count must be in (0, 2^31], got ", samples));
  }
  if (!std::isfinite(loss_sum)) return absl::InvalidArgumentError("loss sum is not finite");
  if (num_floats < 0 || num_floats > ModelLayout::kMaxFloats) {
    return absl::InvalidArgumentError(absl::StrCat("announced float count ", num_floats));
  }
  return absl::OkStatus();
}

}  // namespace

void LayoutToProto(const ModelLayout& layout, v1::ModelLayout* out) {
  for (const TensorSpec& t : layout.tensors()) {
    v1::TensorSpec* spec = out->add_tensors();
    spec->set_name(t.name);
    for (int64_t d : t.shape) spec->add_shape(d);
  }
}

absl::StatusOr<ModelLayout> LayoutFromProto(const v1::ModelLayout& proto) {
  std::vector<TensorSpec> specs;
  for (const v1::TensorSpec& t : proto.tensors()) {
    specs.push_back({t.name(), std::vector<int64_t>(t.shape().begin(), t.shape().end())});
  }
  return ModelLayout::Create(std::move(specs));
}

void ModeToProto(const ModeConfig& mode, v1::ModeConfig* out) {
  switch (mode.mode) {
    case Mode::kSync:
      out->set_mode(v1::MODE_SYNC);
      break;
    case Mode::kAsync:
      out->set_mode(v1::MODE_ASYNC);
      break;
    case Mode::kSsp:
      out->set_mode(v1::MODE_SSP);
      break;
  }
  out->set_staleness(mode.staleness);
}

absl::StatusOr<ModeConfig> ModeFromProto(const v1::ModeConfig& proto) {
  ModeConfig mode;
  switch (proto.mode()) {
    case v1::MODE_SYNC:
      mode.mode = Mode::kSync;
      break;
    case v1::MODE_ASYNC:
      mode.mode = Mode::kAsync;
      break;
    case v1::MODE_SSP:
      mode.mode = Mode::kSsp;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown mode ", proto.mode()));
  }
  mode.staleness = proto.staleness();
  if (absl::Status s = ValidateModeConfig(mode); !s.ok()) return s;
  return mode;
}

v1::Encoding EncodingToProto(Encoding encoding) {
  switch (encoding) {
    case Encoding::kFp32:
      return v1::ENCODING_FP32;
    case Encoding::kFp16:
      return v1::ENCODING_FP16;
    case Encoding::kBf16:
      return v1::ENCODING_BF16;
    case Encoding::kTopK:
      return v1::ENCODING_TOPK;
  }
  return v1::ENCODING_FP32;
}

absl::StatusOr<Encoding> EncodingFromProto(v1::Encoding encoding, int64_t num_floats,
                                           int64_t nonzeros) {
  Encoding e;
  switch (encoding) {
    case v1::ENCODING_FP32:
      e = Encoding::kFp32;
      break;
    case v1::ENCODING_FP16:
      e = Encoding::kFp16;
      break;
    case v1::ENCODING_BF16:
      e = Encoding::kBf16;
      break;
    case v1::ENCODING_TOPK:
      e = Encoding::kTopK;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown encoding ", encoding));
  }
  if (e == Encoding::kTopK ? (nonzeros < 0 || nonzeros > num_floats) : nonzeros != 0) {
    return absl::InvalidArgumentError(absl::StrCat(EncodingName(e), " payload with ", nonzeros,
                                                   " nonzeros of ", num_floats, " floats"));
  }
  return e;
}

absl::Status ValidateGradientHeader(const v1::GradientHeader& h) {
  if (absl::Status s = ValidateId(h.sender_id(), "sender id"); !s.ok()) return s;
  if (absl::StatusOr<Encoding> e = EncodingFromProto(h.encoding(), h.num_floats(), h.nonzeros());
      !e.ok()) {
    return e.status();
  }
  if (h.sequence() < 0) return absl::InvalidArgumentError("negative sequence number");
  if (h.step() < 0) return absl::InvalidArgumentError("negative step");
  return ValidateCommon(h.version(), h.sample_count(), h.loss_sum(), h.num_floats());
}

absl::Status ValidateAggregateHeader(const v1::AggregateHeader& h) {
  if (absl::Status s = ValidateId(h.aggregator_id(), "aggregator id"); !s.ok()) return s;
  if (absl::StatusOr<Encoding> e = EncodingFromProto(h.encoding(), h.num_floats(), h.nonzeros());
      !e.ok()) {
    return e.status();
  }
  if (h.sequence() < 0) return absl::InvalidArgumentError("negative sequence number");
  if (h.contributor_count() == 0) {
    // An aggregator's empty sync round: no sum, no contributors.
    if (h.version() < 0 || h.total_samples() != 0 || h.num_floats() != 0 ||
        h.contributors_size() != 0 || h.contributor_versions_size() != 0) {
      return absl::InvalidArgumentError(
          "an aggregate without contributors must have no samples, floats or versions");
    }
    return absl::OkStatus();
  }
  if (h.contributor_count() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("contributor count must not be negative, got ", h.contributor_count()));
  }
  if (h.contributors_size() != 0 && h.contributors_size() != h.contributor_count()) {
    return absl::InvalidArgumentError(absl::StrCat("the aggregate lists ", h.contributors_size(),
                                                   " contributors, the header counts ",
                                                   h.contributor_count()));
  }
  for (const v1::Contributor& c : h.contributors()) {
    if (absl::Status s = ValidateId(c.worker_id(), "contributor id"); !s.ok()) return s;
    if (c.sequence() < 0 || c.step() < 0 || c.version() < h.version()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "contributor ", c.worker_id(), " has a negative sequence or step, or a version below ",
          h.version()));
    }
  }
  if (h.contributor_versions_size() > 0) {
    int64_t total = 0;
    for (const v1::VersionCount& vc : h.contributor_versions()) {
      if (vc.version() < h.version() || vc.count() <= 0 || vc.count() > h.contributor_count()) {
        return absl::InvalidArgumentError(
            absl::StrCat("contributor versions must be >= ", h.version(),
                         " with counts in [1, contributors]; got ", vc.count(), " at version ",
                         vc.version()));
      }
      total += vc.count();
    }
    if (total != h.contributor_count()) {
      return absl::InvalidArgumentError(absl::StrCat("contributor versions count ", total,
                                                     " gradients, the header ",
                                                     h.contributor_count()));
    }
  }
  return ValidateCommon(h.version(), h.total_samples(), h.loss_sum(), h.num_floats());
}

}  // namespace hips

namespace hips {

absl::StatusOr<HeartbeatRequestData> HeartbeatFromProto(const v1::HeartbeatRequest& req) {
  if (absl::Status s = ValidateId(req.member_id(), "member id"); !s.ok()) return s;
  if (req.live_workers_size() > kMaxReportedWorkers) {
    return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxReportedWorkers,
                                                   " live workers reported"));
  }
  HeartbeatRequestData hb;
  hb.member = req.member_id();
  hb.incarnation = req.incarnation();
  hb.leaving = req.leaving();
  hb.forming = req.forming();
  if (req.address().size() > 256) return absl::InvalidArgumentError("address too long");
  hb.address = req.address();
  for (const std::string& w : req.live_workers()) {
    if (absl::Status s = ValidateId(w, "worker id"); !s.ok()) return s;
    hb.live_workers.push_back(w);
  }
  return hb;
}

void HeartbeatToProto(const HeartbeatRequestData& hb, v1::HeartbeatRequest* out) {
  out->set_member_id(hb.member);
  out->set_incarnation(hb.incarnation);
  out->set_leaving(hb.leaving);
  out->set_forming(hb.forming);
  out->set_address(hb.address);
  for (const std::string& w : hb.live_workers) out->add_live_workers(w);
}

void MemberToProto(const MemberInfo& m, absl::Time now, v1::MemberStatus* out) {
  out->set_id(m.id);
  out->set_address(m.address);
  out->set_last_seen_ms(std::max<int64_t>(0, absl::ToInt64Milliseconds(now - m.last_seen)));
  for (const std::string& w : m.live_workers) out->add_live_workers(w);
  out->set_forming(m.forming);
  out->set_last_version(m.last_version);
  out->set_gradients(m.gradients);
  out->set_samples(m.samples);
}

void AnswerToProto(const HeartbeatAnswer& a, v1::HeartbeatReply* out) {
  out->set_lease_ms(absl::ToInt64Milliseconds(a.lease));
  out->set_version(a.version);
  for (const auto& [id, pos] : a.data_positions) (*out->mutable_data_positions())[id] = pos;
}

absl::StatusOr<HeartbeatAnswer> AnswerFromProto(const v1::HeartbeatReply& reply) {
  if (reply.lease_ms() <= 0 || reply.lease_ms() > 3600 * 1000) {
    return absl::InvalidArgumentError(absl::StrCat("lease of ", reply.lease_ms(), " ms"));
  }
  HeartbeatAnswer a;
  a.lease = absl::Milliseconds(reply.lease_ms());
  a.version = reply.version();
  for (const auto& [id, pos] : reply.data_positions()) a.data_positions[id] = pos;
  return a;
}

}  // namespace hips
