#ifndef HIPS_SERVICES_NET_PROTO_CONVERT_H_
#define HIPS_SERVICES_NET_PROTO_CONVERT_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "hips/v1/hips.pb.h"
#include "services/numeric/compression.h"
#include "services/types/consistency.h"
#include "services/types/ids.h"
#include "services/types/model_layout.h"
#include "services/types/payloads.h"
#include "services/types/tier_status.h"

// Conversions between hips.v1 messages and domain types, with the checks that
// anything a peer sends must pass (INVALID_ARGUMENT with a reason otherwise).

namespace hips {

void LayoutToProto(const ModelLayout& layout, v1::ModelLayout* out);
absl::StatusOr<ModelLayout> LayoutFromProto(const v1::ModelLayout& proto);

// Most worker gradients one aggregate may carry (the protocol's bound; a
// server may set a lower one: HQ's --max_workers).
inline constexpr int64_t kMaxContributors = 1 << 16;

void ModeToProto(const ModeConfig& mode, v1::ModeConfig* out);
// INVALID_ARGUMENT for an unknown mode or a staleness out of range.
absl::StatusOr<ModeConfig> ModeFromProto(const v1::ModeConfig& proto);

void LocalSgdToProto(const LocalSgd& sgd, v1::LocalSgd* out);
// INVALID_ARGUMENT for settings ValidateLocalSgd refuses.
absl::StatusOr<LocalSgd> LocalSgdFromProto(const v1::LocalSgd& proto);
// A weights header's participants: INVALID_ARGUMENT for an id
// ValidateMemberId refuses or more than kMaxParticipants of them.
inline constexpr int kMaxParticipants = 1 << 16;
absl::StatusOr<std::vector<std::string>> ParticipantsFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& ids);

v1::Encoding EncodingToProto(Encoding encoding);
// INVALID_ARGUMENT for an encoding this build does not know, or top-k
// entries outside [0, num_floats] (nonzeros must be 0 for the others).
absl::StatusOr<Encoding> EncodingFromProto(v1::Encoding encoding, int64_t num_floats,
                                           int64_t nonzeros);

// The payload a validated GradientHeader or AggregateHeader announces for a
// model of `model_floats` floats (INVALID_ARGUMENT if its size differs).
template <typename Header>
absl::StatusOr<PayloadShape> AnnouncedPayload(const Header& h, int64_t model_floats) {
  if (h.num_floats() != model_floats) {
    return absl::InvalidArgumentError(absl::StrCat("num_floats: the stream announces ",
                                                   h.num_floats(), " floats, the model has ",
                                                   model_floats));
  }
  absl::StatusOr<Encoding> e = EncodingFromProto(h.encoding(), h.num_floats(), h.nonzeros());
  if (!e.ok()) return e.status();
  return PayloadShape{PayloadBytes(*e, h.num_floats(), h.nonzeros()), ElementBytes(*e)};
}

// Says how the received payload of `h` is encoded.
template <typename Header>
void SetPayloadEncoding(const Header& h, EncodedValues* values) {
  values->encoding = *EncodingFromProto(h.encoding(), h.num_floats(), h.nonzeros());
  values->num_floats = h.num_floats();
  values->nonzeros = h.nonzeros();
}

absl::Status ValidateGradientHeader(const v1::GradientHeader& h);
absl::Status ValidateAggregateHeader(const v1::AggregateHeader& h);

// A push's header as its sender writes it (num_floats from the dense
// values, the encoding from `encoded`), and the push's fields back from a
// validated header (its values arrive separately).
v1::GradientHeader GradientHeaderOf(const GradientPush& push);
GradientPush GradientPushOf(const v1::GradientHeader& header);
v1::AggregateHeader AggregateHeaderOf(const AggregatePush& aggregate);
AggregatePush AggregatePushOf(const v1::AggregateHeader& header);

// Most workers one aggregator may report.
inline constexpr int kMaxReportedWorkers = 4096;

absl::StatusOr<HeartbeatRequestData> HeartbeatFromProto(const v1::HeartbeatRequest& req);
void HeartbeatToProto(const HeartbeatRequestData& hb, v1::HeartbeatRequest* out);
void AnswerToProto(const HeartbeatAnswer& answer, v1::HeartbeatReply* out);
absl::StatusOr<HeartbeatAnswer> AnswerFromProto(const v1::HeartbeatReply& reply);
// `now` turns last_seen into an age, and back.
void MemberToProto(const MemberInfo& member, absl::Time now, v1::MemberStatus* out);
MemberInfo MemberFromProto(const v1::MemberStatus& proto, absl::Time now);

// GetStatus replies. FromProto: INVALID_ARGUMENT for a mode or staleness
// histogram that is not one (a peer of another build).
void HqStatusToProto(const HqStatus& status, absl::Time now, v1::StatusReply* out);
absl::StatusOr<HqStatus> HqStatusFromProto(const v1::StatusReply& proto, absl::Time now);
void AggregatorStatusToProto(const AggregatorStatus& status, absl::Time now,
                             v1::AggregatorStatus* out);
AggregatorStatus AggregatorStatusFromProto(const v1::AggregatorStatus& proto, absl::Time now);

}  // namespace hips

#endif  // HIPS_SERVICES_NET_PROTO_CONVERT_H_
