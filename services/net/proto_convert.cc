#include "services/net/proto_convert.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "services/numeric/gradient_accumulator.h"
#include "services/types/drop_reason.h"

namespace hips {
namespace {

// What a gradient and an aggregate header both carry; `samples_field` is
// the name of the sample count's field.
absl::Status ValidateCommon(int64_t version, int64_t samples, const char* samples_field,
                            double loss_sum, int64_t num_floats) {
  if (version < 0) {
    return absl::InvalidArgumentError(absl::StrCat("version must be >= 0, got ", version));
  }
  if (samples <= 0 || samples > GradientAccumulator::kMaxSamples) {
    return absl::InvalidArgumentError(
        absl::StrCat(samples_field, " must be in (0, 2^31], got ", samples));
  }
  if (!std::isfinite(loss_sum)) return NonFiniteError("loss_sum is not finite");
  if (num_floats < 0 || num_floats > ModelLayout::kMaxFloats) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_floats must be in [0, ", ModelLayout::kMaxFloats, "], got ", num_floats));
  }
  return absl::OkStatus();
}

}  // namespace

void LayoutToProto(const ModelLayout& layout, v1::ModelLayout* out) {
  for (const TensorSpec& t : layout.tensors()) {
    v1::TensorSpec* spec = out->add_tensors();
    spec->set_name(t.name);
    for (int64_t d : t.shape) spec->add_shape(d);
    spec->set_buffer(t.buffer);
  }
}

absl::StatusOr<ModelLayout> LayoutFromProto(const v1::ModelLayout& proto) {
  std::vector<TensorSpec> specs;
  for (const v1::TensorSpec& t : proto.tensors()) {
    specs.push_back(
        {t.name(), std::vector<int64_t>(t.shape().begin(), t.shape().end()), t.buffer()});
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
    case Mode::kFedAvg:
      out->set_mode(v1::MODE_FEDAVG);
      out->set_local_steps(mode.local_steps);
      out->set_participation(mode.participation);
      out->set_edge_rounds(mode.edge_rounds);
      out->set_proximal_mu(mode.proximal_mu);
      break;
  }
  out->set_staleness(mode.staleness);
  if (mode.hq_buffer > 0) {
    out->set_hq_buffer(mode.hq_buffer);
    if (mode.staleness_weighting == StalenessWeighting::kPolynomial) {
      out->set_staleness_weighting(v1::STALENESS_WEIGHTING_POLYNOMIAL);
      out->set_staleness_exponent(mode.staleness_exponent);
    }
  }
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
    case v1::MODE_FEDAVG:
      mode.mode = Mode::kFedAvg;
      break;
    default:
      return absl::InvalidArgumentError(absl::StrCat("unknown mode ", proto.mode()));
  }
  mode.staleness = proto.staleness();
  // Unset (0) reads as the default of every mode.
  if (proto.local_steps() != 0) mode.local_steps = proto.local_steps();
  if (proto.participation() != 0) mode.participation = proto.participation();
  if (proto.edge_rounds() != 0) mode.edge_rounds = proto.edge_rounds();
  mode.proximal_mu = proto.proximal_mu();
  mode.hq_buffer = proto.hq_buffer();
  switch (proto.staleness_weighting()) {
    case v1::STALENESS_WEIGHTING_CONSTANT:
      break;
    case v1::STALENESS_WEIGHTING_POLYNOMIAL:
      mode.staleness_weighting = StalenessWeighting::kPolynomial;
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown staleness weighting ", proto.staleness_weighting()));
  }
  if (proto.staleness_exponent() != 0) mode.staleness_exponent = proto.staleness_exponent();
  if (absl::Status s = ValidateModeConfig(mode); !s.ok()) return s;
  return mode;
}

void LocalSgdToProto(const LocalSgd& sgd, v1::LocalSgd* out) {
  out->set_lr(sgd.lr);
  out->set_momentum(sgd.momentum);
  out->set_nesterov(sgd.nesterov);
  out->set_weight_decay(sgd.weight_decay);
}

absl::StatusOr<LocalSgd> LocalSgdFromProto(const v1::LocalSgd& proto) {
  LocalSgd sgd{proto.lr(), proto.momentum(), proto.nesterov(), proto.weight_decay()};
  if (absl::Status s = ValidateLocalSgd(sgd); !s.ok()) return s;
  return sgd;
}

absl::StatusOr<std::vector<std::string>> ParticipantsFromProto(
    const google::protobuf::RepeatedPtrField<std::string>& ids) {
  if (ids.size() > kMaxParticipants) {
    return absl::InvalidArgumentError(
        absl::StrCat(ids.size(), " participants; at most ", kMaxParticipants));
  }
  std::vector<std::string> out;
  out.reserve(ids.size());
  for (const std::string& id : ids) {
    if (absl::Status s = ValidateMemberId(id, "a participant"); !s.ok()) return s;
    out.push_back(id);
  }
  return out;
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
      return absl::InvalidArgumentError(absl::StrCat("encoding: unknown value ", encoding));
  }
  if (e == Encoding::kTopK ? (nonzeros < 0 || nonzeros > num_floats) : nonzeros != 0) {
    return absl::InvalidArgumentError(absl::StrCat("nonzeros: a ", EncodingName(e),
                                                   " payload with ", nonzeros, " nonzeros of ",
                                                   num_floats, " floats"));
  }
  return e;
}

absl::Status ValidateGradientHeader(const v1::GradientHeader& h) {
  if (absl::Status s = ValidateMemberId(h.sender_id(), "sender_id"); !s.ok()) return s;
  if (absl::StatusOr<Encoding> e = EncodingFromProto(h.encoding(), h.num_floats(), h.nonzeros());
      !e.ok()) {
    return e.status();
  }
  if (h.sequence() < 0) return absl::InvalidArgumentError("sequence must be >= 0");
  if (h.sender_incarnation() < 0) {
    return absl::InvalidArgumentError("sender_incarnation must be >= 0");
  }
  if (h.step() < 0) return absl::InvalidArgumentError("step must be >= 0");
  if (h.hq_incarnation() < 0) return absl::InvalidArgumentError("hq_incarnation must be >= 0");
  if (h.edge_round() < 0 || h.edge_round() >= kMaxEdgeRounds) {
    return absl::InvalidArgumentError(
        absl::StrCat("edge_round must be in [0, ", kMaxEdgeRounds, "), got ", h.edge_round()));
  }
  return ValidateCommon(h.version(), h.sample_count(), "sample_count", h.loss_sum(),
                        h.num_floats());
}

absl::Status ValidateAggregateHeader(const v1::AggregateHeader& h) {
  if (absl::Status s = ValidateMemberId(h.aggregator_id(), "aggregator_id"); !s.ok()) return s;
  if (absl::StatusOr<Encoding> e = EncodingFromProto(h.encoding(), h.num_floats(), h.nonzeros());
      !e.ok()) {
    return e.status();
  }
  if (h.sequence() < 0) return absl::InvalidArgumentError("sequence must be >= 0");
  if (h.sender_incarnation() < 0) {
    return absl::InvalidArgumentError("sender_incarnation must be >= 0");
  }
  if (h.hq_incarnation() < 0) return absl::InvalidArgumentError("hq_incarnation must be >= 0");
  if (h.edge_pushes() < 0 || h.edge_pushes() > kMaxContributors * kMaxEdgeRounds) {
    return absl::InvalidArgumentError(absl::StrCat("edge_pushes must be in [0, ",
                                                   kMaxContributors * kMaxEdgeRounds, "], got ",
                                                   h.edge_pushes()));
  }
  if (h.non_finite_workers_size() > kMaxContributors) {
    return absl::InvalidArgumentError(
        absl::StrCat("non_finite_workers lists more than ", kMaxContributors, " workers"));
  }
  absl::flat_hash_set<absl::string_view> non_finite;
  for (const std::string& w : h.non_finite_workers()) {
    if (absl::Status s = ValidateMemberId(w, "non_finite_workers"); !s.ok()) return s;
    if (!non_finite.insert(w).second) {
      return absl::InvalidArgumentError(absl::StrCat("non_finite_workers lists ", w, " twice"));
    }
  }
  if (h.contributor_count() == 0) {
    // An aggregator's empty sync round: no sum, no contributors.
    if (h.version() < 0 || h.total_samples() != 0 || h.num_floats() != 0 ||
        h.contributors_size() != 0 || h.contributor_versions_size() != 0 || h.edge_pushes() != 0) {
      return absl::InvalidArgumentError(
          "an aggregate without contributors must have no samples, floats or versions");
    }
    return absl::OkStatus();
  }
  if (h.contributor_count() < 0 || h.contributor_count() > kMaxContributors) {
    return absl::InvalidArgumentError(absl::StrCat(
        "contributor_count must be in [0, ", kMaxContributors, "], got ", h.contributor_count()));
  }
  // Every contributor's gradient has at least one sample.
  if (h.total_samples() < h.contributor_count()) {
    return absl::InvalidArgumentError(absl::StrCat("total_samples ", h.total_samples(),
                                                   " is below contributor_count ",
                                                   h.contributor_count()));
  }
  if (h.contributors_size() != 0 && h.contributors_size() != h.contributor_count()) {
    return absl::InvalidArgumentError(absl::StrCat("the aggregate lists ", h.contributors_size(),
                                                   " contributors, the header counts ",
                                                   h.contributor_count()));
  }
  absl::flat_hash_set<absl::string_view> listed;
  for (const v1::Contributor& c : h.contributors()) {
    if (absl::Status s = ValidateMemberId(c.worker_id(), "contributors.worker_id"); !s.ok()) {
      return s;
    }
    if (!listed.insert(c.worker_id()).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "contributors lists ", c.worker_id(), " twice (one gradient per worker per aggregate)"));
    }
    if (c.sequence() < 0 || c.incarnation() < 0 || c.step() < 0 || c.version() < h.version()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "contributor ", c.worker_id(),
          " has a negative sequence, incarnation or step, or a version below ", h.version()));
    }
  }
  if (h.contributor_versions_size() > 0) {
    int64_t total = 0;
    for (const v1::VersionCount& vc : h.contributor_versions()) {
      if (vc.version() < h.version() || vc.count() <= 0 || vc.count() > h.contributor_count()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "contributor versions must be >= ", h.version(),
            " with counts in [1, contributors]; got ", vc.count(), " at version ", vc.version()));
      }
      total += vc.count();
    }
    if (total != h.contributor_count()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "contributor versions count ", total, " gradients, the header ", h.contributor_count()));
    }
  }
  return ValidateCommon(h.version(), h.total_samples(), "total_samples", h.loss_sum(),
                        h.num_floats());
}

v1::GradientHeader GradientHeaderOf(const GradientPush& g) {
  v1::GradientHeader h;
  h.set_sender_id(g.sender);
  h.set_version(g.version);
  h.set_sample_count(g.samples);
  h.set_loss_sum(g.loss_sum);
  h.set_num_floats(static_cast<int64_t>(g.gradient.size()));
  h.set_sequence(g.sequence);
  h.set_sender_incarnation(g.incarnation);
  h.set_retry(g.retry);
  h.set_step(g.step);
  h.set_edge_round(g.edge_round);
  h.set_hq_incarnation(g.hq_incarnation);
  h.set_encoding(EncodingToProto(g.encoded.encoding));
  h.set_nonzeros(g.encoded.nonzeros);
  return h;
}

GradientPush GradientPushOf(const v1::GradientHeader& h) {
  GradientPush push;
  push.sender = h.sender_id();
  push.version = h.version();
  push.samples = h.sample_count();
  push.loss_sum = h.loss_sum();
  push.sequence = h.sequence();
  push.incarnation = h.sender_incarnation();
  push.retry = h.retry();
  push.step = h.step();
  push.edge_round = h.edge_round();
  push.hq_incarnation = h.hq_incarnation();
  return push;
}

v1::AggregateHeader AggregateHeaderOf(const AggregatePush& a) {
  v1::AggregateHeader h;
  h.set_aggregator_id(a.aggregator);
  h.set_version(a.version);
  h.set_total_samples(a.total_samples);
  h.set_contributor_count(static_cast<int32_t>(a.contributors));
  h.set_loss_sum(a.loss_sum);
  h.set_num_floats(static_cast<int64_t>(a.sum.size()));
  h.set_sequence(a.sequence);
  h.set_sender_incarnation(a.incarnation);
  for (const auto& [version, count] : a.contributor_versions) {
    v1::VersionCount* vc = h.add_contributor_versions();
    vc->set_version(version);
    vc->set_count(count);
  }
  for (const ContributorRef& ref : a.contributor_list) {
    v1::Contributor* c = h.add_contributors();
    c->set_worker_id(ref.worker);
    c->set_sequence(ref.sequence);
    c->set_version(ref.version);
    c->set_step(ref.step);
    c->set_incarnation(ref.incarnation);
  }
  h.set_single(a.single);
  h.set_edge_pushes(a.edge_pushes);
  h.set_hq_incarnation(a.hq_incarnation);
  for (const std::string& w : a.non_finite_workers) h.add_non_finite_workers(w);
  h.set_encoding(EncodingToProto(a.encoded.encoding));
  h.set_nonzeros(a.encoded.nonzeros);
  return h;
}

AggregatePush AggregatePushOf(const v1::AggregateHeader& h) {
  AggregatePush a;
  a.aggregator = h.aggregator_id();
  a.version = h.version();
  a.total_samples = h.total_samples();
  a.contributors = h.contributor_count();
  a.loss_sum = h.loss_sum();
  a.sequence = h.sequence();
  a.incarnation = h.sender_incarnation();
  for (const v1::VersionCount& vc : h.contributor_versions()) {
    a.contributor_versions[vc.version()] += vc.count();
  }
  for (const v1::Contributor& c : h.contributors()) {
    a.contributor_list.push_back(
        {c.worker_id(), c.sequence(), c.version(), c.step(), c.incarnation()});
  }
  a.single = h.single();
  a.non_finite_workers.assign(h.non_finite_workers().begin(), h.non_finite_workers().end());
  a.edge_pushes = h.edge_pushes();
  a.hq_incarnation = h.hq_incarnation();
  return a;
}

absl::StatusOr<HeartbeatRequestData> HeartbeatFromProto(const v1::HeartbeatRequest& req) {
  if (absl::Status s = ValidateMemberId(req.member_id(), "member_id"); !s.ok()) return s;
  if (req.live_workers_size() > kMaxReportedWorkers) {
    return absl::InvalidArgumentError(
        absl::StrCat("more than ", kMaxReportedWorkers, " live workers reported"));
  }
  HeartbeatRequestData hb;
  hb.member = req.member_id();
  hb.incarnation = req.incarnation();
  hb.leaving = req.leaving();
  hb.forming = req.forming();
  if (req.address().size() > 256) return absl::InvalidArgumentError("address too long");
  hb.address = req.address();
  for (const std::string& w : req.live_workers()) {
    if (absl::Status s = ValidateMemberId(w, "live_workers"); !s.ok()) return s;
    hb.live_workers.push_back(w);
  }
  if (req.homes_size() > kMaxHostedHomes) {
    return absl::InvalidArgumentError(
        absl::StrCat("more than ", kMaxHostedHomes, " homes in one heartbeat"));
  }
  for (const std::string& h : req.homes()) {
    if (absl::Status s = ValidateMemberId(h, "homes"); !s.ok()) return s;
    hb.homes.push_back(h);
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
  for (const std::string& h : hb.homes) out->add_homes(h);
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

MemberInfo MemberFromProto(const v1::MemberStatus& p, absl::Time now) {
  MemberInfo m;
  m.id = p.id();
  m.address = p.address();
  m.last_seen = now - absl::Milliseconds(p.last_seen_ms());
  m.live_workers.assign(p.live_workers().begin(), p.live_workers().end());
  m.forming = p.forming();
  m.last_version = p.last_version();
  m.gradients = p.gradients();
  m.samples = p.samples();
  return m;
}

namespace {

void EvalToProto(const EvalResult& r, v1::EvalResult* out) {
  out->set_version(r.version);
  out->set_accuracy(r.metrics.accuracy);
  out->set_macro_f1(r.metrics.macro_f1);
  out->set_regression(r.metrics.regression);
  out->set_rmse(r.metrics.rmse);
  out->set_r2(r.metrics.r2);
  out->set_examples(r.metrics.examples);
}

EvalResult EvalFromProto(const v1::EvalResult& p) {
  EvalResult r;
  r.version = p.version();
  r.metrics.accuracy = p.accuracy();
  r.metrics.macro_f1 = p.macro_f1();
  r.metrics.regression = p.regression();
  r.metrics.rmse = p.rmse();
  r.metrics.r2 = p.r2();
  r.metrics.examples = p.examples();
  return r;
}

template <typename Map>
std::map<std::string, int64_t> CountsOf(const Map& proto) {
  return std::map<std::string, int64_t>(proto.begin(), proto.end());
}

void RoundWaitToProto(const RoundWait& w, v1::RoundWait* out) {
  out->set_version(w.version);
  for (const std::string& m : w.members) out->add_members(m);
  out->set_waited_s(w.waited_s);
}

RoundWait RoundWaitFromProto(const v1::RoundWait& p) {
  RoundWait w;
  w.version = p.version();
  w.members.assign(p.members().begin(), p.members().end());
  w.waited_s = p.waited_s();
  return w;
}

}  // namespace
void HqStatusToProto(const HqStatus& status, absl::Time now, v1::StatusReply* out) {
  const ParameterServerStatus& s = status.server;
  out->set_version(s.version);
  out->set_max_versions(s.max_versions);
  out->set_max_samples(s.max_samples);
  out->set_mode(DescribeMode(s.mode));
  ModeToProto(s.mode, out->mutable_mode_config());
  out->set_mode_since(s.mode_since);
  if (s.pending_mode.has_value()) ModeToProto(*s.pending_mode, out->mutable_pending_mode());
  out->set_last_loss(s.last_loss);
  out->set_samples_applied(s.samples_applied);
  out->set_training_done(s.training_done);
  int64_t rejected = 0;
  for (const auto& [reason, count] : s.aggregates_dropped) {
    rejected += count;
    (*out->mutable_aggregates_dropped())[reason] = count;
  }
  out->set_aggregates_rejected(rejected);
  out->set_aggregates_received(s.aggregates_received);
  out->set_aggregate_bytes_received(s.aggregate_bytes_received);
  out->set_aggregates_applied(s.aggregates_applied);
  out->set_aggregates_duplicate(s.aggregates_duplicate);
  out->set_aggregates_clipped(s.aggregates_clipped);
  out->set_gradients_received(s.gradients_received);
  out->set_gradients_applied(s.gradients_applied);
  out->set_gradients_duplicate(s.gradients_duplicate);
  out->set_gradients_pending(s.gradients_pending);
  for (const auto& [reason, count] : s.gradients_dropped) {
    (*out->mutable_gradients_dropped())[reason] = count;
  }
  for (int64_t count : s.staleness.counts()) out->add_staleness_counts(count);
  out->set_max_staleness(s.staleness.max());
  out->set_max_round_contributors(s.max_round_contributors);
  for (const std::string& a : s.live_aggregators) out->add_live_aggregators(a);
  for (const std::string& w : s.live_workers) out->add_live_workers(w);
  for (const MemberInfo& m : s.aggregators) MemberToProto(m, now, out->add_aggregators());
  out->set_forming(s.forming);
  out->set_incarnation(s.incarnation);
  out->set_resumed_from(s.resumed_from);
  out->set_rollbacks(s.rollbacks);
  RoundWaitToProto(s.round, out->mutable_round());
  if (s.diverged_version >= 0) {
    out->set_has_divergence(true);
    out->set_diverged_version(s.diverged_version);
    out->set_diverged_reason(s.diverged_reason);
  }
  out->set_checkpoints_taken(s.checkpoints_taken);
  out->set_last_checkpoint_version(s.last_checkpoint_version);
  out->set_update_seconds(s.update_seconds);
  if (status.latest_eval.has_value()) EvalToProto(*status.latest_eval, out->mutable_latest_eval());
  if (status.final_eval.has_value()) EvalToProto(*status.final_eval, out->mutable_final_eval());
  out->set_final_eval_error(status.final_eval_error);
  for (const auto& [reason, n] : status.calls_refused) (*out->mutable_calls_refused())[reason] = n;
}

absl::StatusOr<HqStatus> HqStatusFromProto(const v1::StatusReply& p, absl::Time now) {
  HqStatus status;
  ParameterServerStatus& s = status.server;
  s.version = p.version();
  s.max_versions = p.max_versions();
  s.max_samples = p.max_samples();
  absl::StatusOr<ModeConfig> mode = ModeFromProto(p.mode_config());
  if (!mode.ok()) return mode.status();
  s.mode = *mode;
  s.mode_since = p.mode_since();
  if (p.has_pending_mode()) {
    absl::StatusOr<ModeConfig> pending = ModeFromProto(p.pending_mode());
    if (!pending.ok()) return pending.status();
    s.pending_mode = *pending;
  }
  s.last_loss = p.last_loss();
  s.samples_applied = p.samples_applied();
  s.training_done = p.training_done();
  s.aggregates_dropped = CountsOf(p.aggregates_dropped());
  s.aggregates_received = p.aggregates_received();
  s.aggregate_bytes_received = p.aggregate_bytes_received();
  s.aggregates_applied = p.aggregates_applied();
  s.aggregates_duplicate = p.aggregates_duplicate();
  s.aggregates_clipped = p.aggregates_clipped();
  s.gradients_received = p.gradients_received();
  s.gradients_applied = p.gradients_applied();
  s.gradients_duplicate = p.gradients_duplicate();
  s.gradients_pending = p.gradients_pending();
  s.gradients_dropped = CountsOf(p.gradients_dropped());
  absl::StatusOr<StalenessHistogram> staleness = StalenessHistogram::FromCounts(
      std::vector<int64_t>(p.staleness_counts().begin(), p.staleness_counts().end()),
      p.max_staleness());
  if (!staleness.ok()) return staleness.status();
  s.staleness = *std::move(staleness);
  s.max_round_contributors = p.max_round_contributors();
  s.live_aggregators.assign(p.live_aggregators().begin(), p.live_aggregators().end());
  s.live_workers.assign(p.live_workers().begin(), p.live_workers().end());
  for (const v1::MemberStatus& m : p.aggregators()) {
    s.aggregators.push_back(MemberFromProto(m, now));
  }
  s.forming = p.forming();
  s.incarnation = p.incarnation();
  s.resumed_from = p.resumed_from();
  s.rollbacks = p.rollbacks();
  s.round = RoundWaitFromProto(p.round());
  if (p.has_divergence()) {
    s.diverged_version = p.diverged_version();
    s.diverged_reason = p.diverged_reason();
  }
  s.checkpoints_taken = p.checkpoints_taken();
  s.last_checkpoint_version = p.last_checkpoint_version();
  s.update_seconds = p.update_seconds();
  if (p.has_latest_eval()) status.latest_eval = EvalFromProto(p.latest_eval());
  if (p.has_final_eval()) status.final_eval = EvalFromProto(p.final_eval());
  status.final_eval_error = p.final_eval_error();
  status.calls_refused = CountsOf(p.calls_refused());
  return status;
}

void AggregatorStatusToProto(const AggregatorStatus& status, absl::Time now,
                             v1::AggregatorStatus* out) {
  const AggregatorCounters& c = status.counters;
  out->set_aggregator_id(status.id);
  out->set_version(status.version);
  out->set_gradients_received(c.gradients_received);
  out->set_gradients_accepted(c.gradients_accepted);
  out->set_gradients_duplicate(c.gradients_duplicate);
  out->set_gradients_clipped(c.gradients_clipped);
  out->set_gradients_capped(c.gradients_capped);
  out->set_gradients_trimmed(c.gradients_trimmed);
  out->set_members_quarantined(c.members_quarantined);
  for (const auto& [reason, n] : c.gradients_dropped) {
    (*out->mutable_gradients_dropped())[reason] = n;
  }
  out->set_gradients_forwarded(c.gradients_forwarded);
  out->set_gradients_pending(c.gradients_pending);
  out->set_aggregates_sent(c.rounds_closed);
  out->set_aggregates_refused(c.aggregates_refused);
  out->set_gradients_sent_alone(c.gradients_sent_alone);
  out->set_gradients_edge_applied(c.gradients_edge_applied);
  out->set_edge_rounds_closed(c.edge_rounds_closed);
  out->set_gradient_bytes_received(c.gradient_bytes_received);
  out->set_aggregate_bytes_sent(c.aggregate_bytes_sent);
  for (const std::string& w : c.live_workers) out->add_live_workers(w);
  for (const MemberInfo& m : c.workers) MemberToProto(m, now, out->add_workers());
  out->set_forming(c.forming);
  RoundWaitToProto(c.round, out->mutable_round());
  for (const auto& [reason, n] : status.calls_refused) (*out->mutable_calls_refused())[reason] = n;
}

AggregatorStatus AggregatorStatusFromProto(const v1::AggregatorStatus& p, absl::Time now) {
  AggregatorStatus status;
  status.id = p.aggregator_id();
  status.version = p.version();
  AggregatorCounters& c = status.counters;
  c.gradients_received = p.gradients_received();
  c.gradients_accepted = p.gradients_accepted();
  c.gradients_duplicate = p.gradients_duplicate();
  c.gradients_clipped = p.gradients_clipped();
  c.gradients_capped = p.gradients_capped();
  c.gradients_trimmed = p.gradients_trimmed();
  c.members_quarantined = p.members_quarantined();
  c.gradients_dropped = CountsOf(p.gradients_dropped());
  c.gradients_forwarded = p.gradients_forwarded();
  c.gradients_pending = p.gradients_pending();
  c.rounds_closed = p.aggregates_sent();
  c.aggregates_refused = p.aggregates_refused();
  c.gradients_sent_alone = p.gradients_sent_alone();
  c.gradients_edge_applied = p.gradients_edge_applied();
  c.edge_rounds_closed = p.edge_rounds_closed();
  c.gradient_bytes_received = p.gradient_bytes_received();
  c.aggregate_bytes_sent = p.aggregate_bytes_sent();
  c.live_workers.assign(p.live_workers().begin(), p.live_workers().end());
  for (const v1::MemberStatus& m : p.workers()) c.workers.push_back(MemberFromProto(m, now));
  c.forming = p.forming();
  c.round = RoundWaitFromProto(p.round());
  status.calls_refused = CountsOf(p.calls_refused());
  return status;
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
