// The message validators: every message a peer sends that hips checks
// before using it (a push's header, an aggregate's, a heartbeat, a pull's
// requester, a mode, a layout, and the replies a client trusts: a
// heartbeat's answer, a status). The first byte picks the message, the
// rest is its wire bytes. A message a validator accepts must convert
// without surprises: what the checks promise holds.

#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "absl/time/clock.h"
#include "fuzz/fuzz_input.h"
#include "hips/v1/hips.pb.h"
#include "services/net/proto_convert.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/types/ids.h"

namespace {

void Check(bool condition) {
  if (!condition) std::abort();
}

template <typename Message>
bool Parse(const uint8_t* data, size_t size, Message* m) {
  return m->ParseFromArray(data, static_cast<int>(size));
}

void Gradient(const uint8_t* data, size_t size) {
  hips::v1::GradientHeader h;
  if (!Parse(data, size, &h) || !hips::ValidateGradientHeader(h).ok()) return;
  Check(h.sample_count() > 0 && h.sample_count() <= hips::GradientAccumulator::kMaxSamples);
  Check(hips::ValidateMemberId(h.sender_id(), "sender_id").ok());
  const hips::GradientPush push = hips::GradientPushOf(h);
  Check(push.sender == h.sender_id() && push.samples == h.sample_count());
  (void)hips::AnnouncedPayload(h, 64);
}

void Aggregate(const uint8_t* data, size_t size) {
  hips::v1::AggregateHeader h;
  if (!Parse(data, size, &h) || !hips::ValidateAggregateHeader(h).ok()) return;
  Check(h.contributor_count() >= 0 && h.contributor_count() <= hips::kMaxContributors);
  Check(h.contributors_size() == 0 || h.contributors_size() == h.contributor_count());
  Check(h.contributor_count() == 0 || h.total_samples() >= h.contributor_count());
  std::set<std::string> ids;
  for (const hips::v1::Contributor& c : h.contributors()) Check(ids.insert(c.worker_id()).second);
  const hips::AggregatePush push = hips::AggregatePushOf(h);
  Check(push.contributors == h.contributor_count());
  (void)hips::AnnouncedPayload(h, 64);
}

void Heartbeat(const uint8_t* data, size_t size) {
  hips::v1::HeartbeatRequest req;
  if (!Parse(data, size, &req)) return;
  absl::StatusOr<hips::HeartbeatRequestData> hb = hips::HeartbeatFromProto(req);
  if (!hb.ok()) return;
  Check(hips::ValidateMemberId(hb->member, "member_id").ok());
  for (const std::string& w : hb->live_workers) Check(hips::ValidateMemberId(w, "w").ok());
}

void Others(uint8_t which, const uint8_t* data, size_t size) {
  switch (which) {
    case 3: {
      hips::v1::PullWeightsRequest req;
      if (Parse(data, size, &req)) (void)hips::ValidateMemberId(req.requester_id(), "r");
      break;
    }
    case 4: {
      hips::v1::ModeConfig mode;
      if (!Parse(data, size, &mode)) break;
      absl::StatusOr<hips::ModeConfig> m = hips::ModeFromProto(mode);
      if (m.ok()) Check(hips::ValidateModeConfig(*m).ok());
      break;
    }
    case 5: {
      hips::v1::ModelLayout layout;
      if (!Parse(data, size, &layout)) break;
      absl::StatusOr<hips::ModelLayout> l = hips::LayoutFromProto(layout);
      if (l.ok()) Check(l->num_floats() >= 0 && l->num_floats() <= hips::ModelLayout::kMaxFloats);
      break;
    }
    case 6: {
      hips::v1::HeartbeatReply reply;
      if (Parse(data, size, &reply)) (void)hips::AnswerFromProto(reply);
      break;
    }
    case 7: {
      hips::v1::StatusReply reply;
      if (Parse(data, size, &reply)) (void)hips::HqStatusFromProto(reply, absl::Now());
      break;
    }
    default: {
      hips::v1::AggregatorStatus reply;
      if (Parse(data, size, &reply)) (void)hips::AggregatorStatusFromProto(reply, absl::Now());
      break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  hips::fuzz::QuietProtobuf();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t which = data[0] % 9;
  ++data;
  --size;
  switch (which) {
    case 0:
      Gradient(data, size);
      break;
    case 1:
      Aggregate(data, size);
      break;
    case 2:
      Heartbeat(data, size);
      break;
    default:
      Others(which, data, size);
  }
  // Any bytes as an id.
  (void)hips::ValidateMemberId(
      absl::string_view(reinterpret_cast<const char*>(data), std::min<size_t>(size, 200)), "id");
  return 0;
}
