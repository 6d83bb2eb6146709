// Conversions between hips.v1 messages and domain types: what goes in comes
// out, field by field, and what a peer must not send is refused.

#include "services/net/proto_convert.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hips {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

MemberInfo Member(const std::string& id, int64_t age_ms) {
  MemberInfo m;
  m.id = id;
  m.address = "10.0.0.7:7001";
  m.last_seen = kNow - absl::Milliseconds(age_ms);
  m.live_workers = {"worker-0", "worker-2"};
  m.forming = true;
  m.last_version = 41;
  m.gradients = 17;
  m.samples = 17 * 64;
  return m;
}

void ExpectSameMember(const MemberInfo& a, const MemberInfo& b) {
  EXPECT_EQ(a.id, b.id);
  EXPECT_EQ(a.address, b.address);
  EXPECT_EQ(a.last_seen, b.last_seen);
  EXPECT_EQ(a.live_workers, b.live_workers);
  EXPECT_EQ(a.forming, b.forming);
  EXPECT_EQ(a.last_version, b.last_version);
  EXPECT_EQ(a.gradients, b.gradients);
  EXPECT_EQ(a.samples, b.samples);
}

TEST(ProtoConvertTest, HqStatusRoundTripsFieldByField) {
  HqStatus in;
  ParameterServerStatus& s = in.server;
  s.version = 120;
  s.max_versions = 500;
  s.max_samples = 600000;
  s.training_done = true;
  s.last_loss = 0.3125;
  s.samples_applied = 120 * 256;
  s.mode = {Mode::kSsp, 3};
  s.mode_since = 100;
  s.pending_mode = ModeConfig{Mode::kAsync, 0};
  s.aggregates_received = 250;
  s.aggregate_bytes_received = 1 << 30;
  s.aggregates_applied = 240;
  s.aggregates_duplicate = 4;
  s.aggregates_dropped = {{"stale_version", 5}, {"invalid", 1}};
  s.gradients_received = 500;
  s.gradients_applied = 480;
  s.gradients_duplicate = 8;
  s.gradients_dropped = {{"stale_version", 10}};
  s.gradients_pending = 2;
  s.staleness.Record(0, 470);
  s.staleness.Record(3, 10);
  s.max_round_contributors = 4;
  s.live_aggregators = {"agg-0", "agg-1"};
  s.live_workers = {"worker-0", "worker-1"};
  s.aggregators = {Member("agg-0", 250), Member("agg-1", 0)};
  s.forming = false;
  s.incarnation = 1700000000000001;
  s.resumed_from = 60;
  s.checkpoints_taken = 3;
  s.last_checkpoint_version = 100;
  s.update_seconds = 1.5;
  s.rollbacks = 2;
  s.diverged_version = 118;
  s.diverged_reason = "a weight after the step is nan at float 7 of 9";
  s.round = {120, {"agg-1"}, 4.25};
  in.latest_eval = EvalResult{100, {0.875, 0.86, 10000}};
  in.final_eval = EvalResult{120, {0.8933, 0.8931, 10000}};

  v1::StatusReply proto;
  HqStatusToProto(in, kNow, &proto);
  EXPECT_EQ(proto.mode(), "ssp(3)");
  EXPECT_EQ(proto.aggregates_rejected(), 6);
  absl::StatusOr<HqStatus> out = HqStatusFromProto(proto, kNow);
  ASSERT_TRUE(out.ok()) << out.status();
  const ParameterServerStatus& o = out->server;
  EXPECT_EQ(o.version, s.version);
  EXPECT_EQ(o.max_versions, s.max_versions);
  EXPECT_EQ(o.max_samples, s.max_samples);
  EXPECT_EQ(o.training_done, s.training_done);
  EXPECT_EQ(o.last_loss, s.last_loss);
  EXPECT_EQ(o.samples_applied, s.samples_applied);
  EXPECT_EQ(o.mode, s.mode);
  EXPECT_EQ(o.mode_since, s.mode_since);
  EXPECT_EQ(o.pending_mode, s.pending_mode);
  EXPECT_EQ(o.aggregates_received, s.aggregates_received);
  EXPECT_EQ(o.aggregate_bytes_received, s.aggregate_bytes_received);
  EXPECT_EQ(o.aggregates_applied, s.aggregates_applied);
  EXPECT_EQ(o.aggregates_duplicate, s.aggregates_duplicate);
  EXPECT_EQ(o.aggregates_dropped, s.aggregates_dropped);
  EXPECT_EQ(o.gradients_received, s.gradients_received);
  EXPECT_EQ(o.gradients_applied, s.gradients_applied);
  EXPECT_EQ(o.gradients_duplicate, s.gradients_duplicate);
  EXPECT_EQ(o.gradients_dropped, s.gradients_dropped);
  EXPECT_EQ(o.gradients_pending, s.gradients_pending);
  EXPECT_EQ(o.staleness.counts(), s.staleness.counts());
  EXPECT_EQ(o.staleness.max(), 3);
  EXPECT_EQ(o.max_round_contributors, s.max_round_contributors);
  EXPECT_EQ(o.live_aggregators, s.live_aggregators);
  EXPECT_EQ(o.live_workers, s.live_workers);
  ASSERT_EQ(o.aggregators.size(), 2u);
  for (size_t i = 0; i < 2; ++i) ExpectSameMember(o.aggregators[i], s.aggregators[i]);
  EXPECT_EQ(o.forming, s.forming);
  EXPECT_EQ(o.incarnation, s.incarnation);
  EXPECT_EQ(o.resumed_from, s.resumed_from);
  EXPECT_EQ(o.checkpoints_taken, s.checkpoints_taken);
  EXPECT_EQ(o.last_checkpoint_version, s.last_checkpoint_version);
  EXPECT_EQ(o.update_seconds, s.update_seconds);
  EXPECT_EQ(o.rollbacks, s.rollbacks);
  EXPECT_EQ(o.diverged_version, s.diverged_version);
  EXPECT_EQ(o.diverged_reason, s.diverged_reason);
  EXPECT_EQ(o.round.version, 120);
  EXPECT_EQ(o.round.members, s.round.members);
  EXPECT_EQ(o.round.waited_s, 4.25);
  ASSERT_TRUE(out->latest_eval.has_value());
  EXPECT_EQ(out->latest_eval->version, 100);
  EXPECT_EQ(out->latest_eval->metrics.accuracy, 0.875);
  EXPECT_EQ(out->latest_eval->metrics.macro_f1, 0.86);
  EXPECT_EQ(out->latest_eval->metrics.examples, 10000);
  ASSERT_TRUE(out->final_eval.has_value());
  EXPECT_EQ(out->final_eval->version, 120);
  EXPECT_EQ(out->final_eval_error, "");
}

TEST(ProtoConvertTest, HqStatusWithoutEvaluationsOrPendingModeStaysWithout) {
  HqStatus in;
  in.final_eval_error = "INTERNAL: out of memory";
  v1::StatusReply proto;
  HqStatusToProto(in, kNow, &proto);
  absl::StatusOr<HqStatus> out = HqStatusFromProto(proto, kNow);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE(out->latest_eval.has_value());
  EXPECT_FALSE(out->final_eval.has_value());
  EXPECT_FALSE(out->server.pending_mode.has_value());
  EXPECT_EQ(out->final_eval_error, "INTERNAL: out of memory");
  EXPECT_EQ(out->server.mode, ModeConfig{});
}

TEST(ProtoConvertTest, HqStatusFromAnotherBuildIsRefusedWhereItMakesNoSense) {
  v1::StatusReply unknown_mode;
  unknown_mode.mutable_mode_config()->set_mode(static_cast<v1::Mode>(42));
  EXPECT_TRUE(absl::IsInvalidArgument(HqStatusFromProto(unknown_mode, kNow).status()));

  v1::StatusReply too_many_buckets;
  for (int i = 0; i <= StalenessHistogram::kBuckets; ++i) too_many_buckets.add_staleness_counts(1);
  EXPECT_TRUE(absl::IsInvalidArgument(HqStatusFromProto(too_many_buckets, kNow).status()));

  v1::StatusReply negative_count;
  negative_count.add_staleness_counts(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(HqStatusFromProto(negative_count, kNow).status()));
}

TEST(ProtoConvertTest, AggregatorStatusRoundTripsFieldByField) {
  AggregatorStatus in;
  in.id = "agg-1";
  in.version = 77;
  AggregatorCounters& c = in.counters;
  c.gradients_received = 300;
  c.gradients_accepted = 290;
  c.gradients_duplicate = 3;
  c.gradients_dropped = {{"round_closed", 7}};
  c.gradients_forwarded = 288;
  c.gradients_pending = 2;
  c.rounds_closed = 150;
  c.aggregates_refused = 1;
  c.gradients_sent_alone = 5;
  c.gradient_bytes_received = int64_t{300} * 1077288;
  c.aggregate_bytes_sent = int64_t{150} * 1077288;
  c.live_workers = {"worker-1", "worker-3"};
  c.workers = {Member("worker-1", 10), Member("worker-3", 1999)};
  c.forming = true;
  c.round = {7, {"worker-1", "worker-3"}, 0.5};

  v1::AggregatorStatus proto;
  AggregatorStatusToProto(in, kNow, &proto);
  EXPECT_EQ(proto.aggregator_id(), "agg-1");
  const AggregatorStatus out = AggregatorStatusFromProto(proto, kNow);
  EXPECT_EQ(out.id, in.id);
  EXPECT_EQ(out.version, in.version);
  const AggregatorCounters& o = out.counters;
  EXPECT_EQ(o.gradients_received, c.gradients_received);
  EXPECT_EQ(o.gradients_accepted, c.gradients_accepted);
  EXPECT_EQ(o.gradients_duplicate, c.gradients_duplicate);
  EXPECT_EQ(o.gradients_dropped, c.gradients_dropped);
  EXPECT_EQ(o.gradients_forwarded, c.gradients_forwarded);
  EXPECT_EQ(o.gradients_pending, c.gradients_pending);
  EXPECT_EQ(o.rounds_closed, c.rounds_closed);
  EXPECT_EQ(o.aggregates_refused, c.aggregates_refused);
  EXPECT_EQ(o.gradients_sent_alone, c.gradients_sent_alone);
  EXPECT_EQ(o.gradient_bytes_received, c.gradient_bytes_received);
  EXPECT_EQ(o.aggregate_bytes_sent, c.aggregate_bytes_sent);
  EXPECT_EQ(o.live_workers, c.live_workers);
  ASSERT_EQ(o.workers.size(), 2u);
  for (size_t i = 0; i < 2; ++i) ExpectSameMember(o.workers[i], c.workers[i]);
  EXPECT_EQ(o.forming, c.forming);
  EXPECT_EQ(o.round.version, 7);
  EXPECT_EQ(o.round.members, c.round.members);
  EXPECT_EQ(o.round.waited_s, 0.5);
}

TEST(ProtoConvertTest, ALastSeenInTheFutureIsReportedAsJustNow) {
  MemberInfo m = Member("agg-0", 0);
  m.last_seen = kNow + absl::Seconds(3);  // clocks of different hosts
  v1::MemberStatus proto;
  MemberToProto(m, kNow, &proto);
  EXPECT_EQ(proto.last_seen_ms(), 0);
}

TEST(ProtoConvertTest, HeartbeatsRoundTripAndBadOnesAreRefused) {
  HeartbeatRequestData in;
  in.member = "agg-0";
  in.incarnation = 1700000000000123;
  in.leaving = false;
  in.live_workers = {"worker-0", "worker-2"};
  in.forming = true;
  in.address = "127.0.0.1:7001";
  in.homes = {"worker-7", "worker-8"};
  v1::HeartbeatRequest proto;
  HeartbeatToProto(in, &proto);
  absl::StatusOr<HeartbeatRequestData> out = HeartbeatFromProto(proto);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->member, in.member);
  EXPECT_EQ(out->incarnation, in.incarnation);
  EXPECT_EQ(out->leaving, in.leaving);
  EXPECT_EQ(out->live_workers, in.live_workers);
  EXPECT_EQ(out->forming, in.forming);
  EXPECT_EQ(out->address, in.address);
  EXPECT_EQ(out->homes, in.homes);

  v1::HeartbeatRequest bad_home = proto;
  bad_home.add_homes("worker-[1..2]");  // a range is no home
  EXPECT_TRUE(absl::IsInvalidArgument(HeartbeatFromProto(bad_home).status()));
  v1::HeartbeatRequest too_many_homes = proto;
  for (int i = 0; i < kMaxHostedHomes; ++i) too_many_homes.add_homes("w");
  EXPECT_TRUE(absl::IsInvalidArgument(HeartbeatFromProto(too_many_homes).status()));
  v1::HeartbeatRequest no_id = proto;
  no_id.clear_member_id();
  EXPECT_TRUE(absl::IsInvalidArgument(HeartbeatFromProto(no_id).status()));
  v1::HeartbeatRequest long_id = proto;
  long_id.set_member_id(std::string(kMaxIdLength + 1, 'w'));
  EXPECT_TRUE(absl::IsInvalidArgument(HeartbeatFromProto(long_id).status()));
  v1::HeartbeatRequest empty_worker = proto;
  empty_worker.add_live_workers("");
  EXPECT_TRUE(absl::IsInvalidArgument(HeartbeatFromProto(empty_worker).status()));
  v1::HeartbeatRequest too_many = proto;
  for (int i = 0; i <= kMaxReportedWorkers; ++i) too_many.add_live_workers("w");
  EXPECT_TRUE(absl::IsInvalidArgument(HeartbeatFromProto(too_many).status()));
  v1::HeartbeatRequest long_address = proto;
  long_address.set_address(std::string(257, 'a'));
  EXPECT_TRUE(absl::IsInvalidArgument(HeartbeatFromProto(long_address).status()));
}

TEST(ProtoConvertTest, HeartbeatAnswersRoundTripAndLeasesAreBounded) {
  HeartbeatAnswer in;
  in.lease = absl::Milliseconds(1500);
  in.version = 9;
  in.data_positions = {{"worker-0", 12}, {"worker-1", 13}};
  v1::HeartbeatReply proto;
  AnswerToProto(in, &proto);
  absl::StatusOr<HeartbeatAnswer> out = AnswerFromProto(proto);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->lease, in.lease);
  EXPECT_EQ(out->version, in.version);
  EXPECT_EQ(out->data_positions, in.data_positions);
  for (int64_t ms : {int64_t{0}, int64_t{-5}, int64_t{3600 * 1000 + 1}}) {
    proto.set_lease_ms(ms);
    EXPECT_TRUE(absl::IsInvalidArgument(AnswerFromProto(proto).status())) << ms;
  }
}

TEST(ProtoConvertTest, ModesRoundTripAndUnknownOrOutOfRangeAreRefused) {
  for (const ModeConfig& mode :
       {ModeConfig{Mode::kSync, 0}, ModeConfig{Mode::kAsync, 0}, ModeConfig{Mode::kSsp, 0},
        ModeConfig{Mode::kSsp, kMaxStaleness}, ModeConfig{Mode::kFedAvg, 0, 10, 0.25},
        ModeConfig{Mode::kFedAvg, 0, kMaxLocalSteps, 1.0}}) {
    v1::ModeConfig proto;
    ModeToProto(mode, &proto);
    absl::StatusOr<ModeConfig> out = ModeFromProto(proto);
    ASSERT_TRUE(out.ok()) << DescribeMode(mode) << ": " << out.status();
    EXPECT_EQ(*out, mode);
  }
  // FedProx and HQ's buffer (docs/noniid.md).
  ModeConfig prox{Mode::kFedAvg, 0, 10, 1.0};
  prox.proximal_mu = 0.01;
  prox.hq_buffer = 3;
  prox.staleness_weighting = StalenessWeighting::kPolynomial;
  prox.staleness_exponent = 0.75;
  ModeConfig buffered{Mode::kSync};
  buffered.hq_buffer = 2;
  for (const ModeConfig& mode : {prox, buffered}) {
    v1::ModeConfig proto;
    ModeToProto(mode, &proto);
    absl::StatusOr<ModeConfig> out = ModeFromProto(proto);
    ASSERT_TRUE(out.ok()) << DescribeMode(mode) << ": " << out.status();
    EXPECT_EQ(*out, mode);
  }
  v1::ModeConfig lies;
  lies.set_mode(v1::MODE_SYNC);
  lies.set_hq_buffer(2);
  lies.set_staleness_weighting(static_cast<v1::StalenessWeighting>(9));
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(lies).status()));
  lies.set_staleness_weighting(v1::STALENESS_WEIGHTING_POLYNOMIAL);
  lies.set_staleness_exponent(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(lies).status()));
  lies.set_staleness_exponent(0.5);
  lies.set_proximal_mu(0.1);  // FedProx in sync
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(lies).status()));
  lies.set_proximal_mu(0);
  lies.set_mode(v1::MODE_ASYNC);  // a buffer in async
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(lies).status()));
  v1::ModeConfig bad;
  bad.set_mode(static_cast<v1::Mode>(7));
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(bad).status()));
  bad.set_mode(v1::MODE_SSP);
  bad.set_staleness(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(bad).status()));
  bad.set_staleness(kMaxStaleness + 1);
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(bad).status()));
  bad.set_mode(v1::MODE_SYNC);
  bad.set_staleness(2);  // a bound only ssp has
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(bad).status()));
  bad.set_staleness(0);
  bad.set_local_steps(5);  // local steps only fedavg has
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(bad).status()));
  bad.set_mode(v1::MODE_FEDAVG);
  bad.set_local_steps(-3);
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(bad).status()));
  bad.set_local_steps(5);
  bad.set_participation(1.5);
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(bad).status()));
  bad.set_participation(-0.5);
  EXPECT_TRUE(absl::IsInvalidArgument(ModeFromProto(bad).status()));
  // Unset knobs read as their defaults.
  v1::ModeConfig plain;
  plain.set_mode(v1::MODE_FEDAVG);
  EXPECT_EQ(*ModeFromProto(plain), (ModeConfig{Mode::kFedAvg, 0, 1, 1.0}));
}

TEST(ProtoConvertTest, LocalSgdAndParticipantsRoundTripAndBadOnesAreRefused) {
  v1::LocalSgd proto;
  LocalSgdToProto(LocalSgd{0.05, 0.9, true, 1e-4}, &proto);
  EXPECT_EQ(*LocalSgdFromProto(proto), (LocalSgd{0.05, 0.9, true, 1e-4}));
  proto.set_momentum(1.0);
  EXPECT_TRUE(absl::IsInvalidArgument(LocalSgdFromProto(proto).status()));
  proto.set_momentum(0.9);
  proto.set_lr(-1);
  EXPECT_TRUE(absl::IsInvalidArgument(LocalSgdFromProto(proto).status()));

  v1::WeightsHeader h;
  h.add_participants("worker-0");
  h.add_participants("worker-3");
  EXPECT_EQ(*ParticipantsFromProto(h.participants()),
            (std::vector<std::string>{"worker-0", "worker-3"}));
  h.add_participants("");
  EXPECT_TRUE(absl::IsInvalidArgument(ParticipantsFromProto(h.participants()).status()));
  h.mutable_participants()->RemoveLast();
  h.add_participants(std::string(1000, 'w'));
  EXPECT_TRUE(absl::IsInvalidArgument(ParticipantsFromProto(h.participants()).status()));
  v1::WeightsHeader many;
  for (int i = 0; i <= kMaxParticipants; ++i) many.add_participants("w");
  EXPECT_TRUE(absl::IsInvalidArgument(ParticipantsFromProto(many.participants()).status()));
}

TEST(ProtoConvertTest, LayoutsRoundTripAndBadOnesAreRefused) {
  absl::StatusOr<ModelLayout> layout =
      ModelLayout::Create({{"1.weight", {256, 784}},
                           {"1.bias", {256}},
                           {"scale", {}},
                           {"bn.running_var", {256}, /*buffer=*/true}});
  ASSERT_TRUE(layout.ok()) << layout.status();
  v1::ModelLayout proto;
  LayoutToProto(*layout, &proto);
  absl::StatusOr<ModelLayout> out = LayoutFromProto(proto);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(*out, *layout);

  v1::ModelLayout negative = proto;
  negative.mutable_tensors(0)->set_shape(0, -1);
  EXPECT_TRUE(absl::IsInvalidArgument(LayoutFromProto(negative).status()));
  v1::ModelLayout repeated = proto;
  *repeated.add_tensors() = proto.tensors(0);
  EXPECT_TRUE(absl::IsInvalidArgument(LayoutFromProto(repeated).status()));
}

TEST(ProtoConvertTest, EncodingsRoundTripAndTheirEntriesAreChecked) {
  for (Encoding e : {Encoding::kFp32, Encoding::kFp16, Encoding::kBf16, Encoding::kTopK}) {
    absl::StatusOr<Encoding> out = EncodingFromProto(EncodingToProto(e), 100, 0);
    ASSERT_TRUE(out.ok()) << EncodingName(e);
    EXPECT_EQ(*out, e);
  }
  EXPECT_TRUE(EncodingFromProto(v1::ENCODING_TOPK, 100, 100).ok());
  EXPECT_TRUE(absl::IsInvalidArgument(EncodingFromProto(v1::ENCODING_TOPK, 100, 101).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(EncodingFromProto(v1::ENCODING_TOPK, 100, -1).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(EncodingFromProto(v1::ENCODING_FP16, 100, 3).status()));
  EXPECT_TRUE(
      absl::IsInvalidArgument(EncodingFromProto(static_cast<v1::Encoding>(9), 100, 0).status()));
}

}  // namespace
}  // namespace hips
