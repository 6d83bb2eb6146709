// hips-fuzz-seeds DIR: writes the seed corpora of the fuzzers into
// DIR/<fuzzer>/ (scripts/fuzz.sh --seeds refreshes fuzz/corpus with it):
// well-formed inputs of every kind each fuzzer takes, made with the same
// code the daemons send with, so the fuzzers start from what peers really
// send and mutate from there.

#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_input.h"
#include "hips/v1/hips.pb.h"
#include "services/net/proto_convert.h"
#include "services/numeric/compression.h"
#if HIPS_FUZZ_CHECKPOINT
#include "services/models/checkpoint_codec.h"
#endif

namespace hips::fuzz {
namespace {

std::string dir;

void Write(const std::string& fuzzer, const std::string& name, const std::string& bytes) {
  const std::string d = absl::StrCat(dir, "/", fuzzer);
  mkdir(d.c_str(), 0755);
  std::ofstream(absl::StrCat(d, "/", name), std::ios::binary) << bytes;
}

std::string Floats(const std::vector<float>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
}

std::vector<float> Ramp(int n) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = 0.25f * static_cast<float>(i) - 3.0f;
  return v;
}

// A push of `values` (64 floats) encoded as `encoding`, in chunks of
// `chunk` payload bytes.
std::string PushStream(Encoding encoding, size_t chunk) {
  CompressionOptions o;
  o.encoding = encoding;
  o.topk_ratio = 0.125;
  std::string payload;
  int64_t nonzeros = 0;
  if (encoding == Encoding::kFp32) {
    payload = Floats(Ramp(64));
  } else {
    Compressor c(o, 64);
    nonzeros = c.Encode(Ramp(64), &payload);
  }
  v1::GradientHeader h;
  h.set_sender_id("worker-0");
  h.set_version(3);
  h.set_sample_count(64);
  h.set_loss_sum(20.5);
  h.set_num_floats(64);
  h.set_sequence(7);
  h.set_step(3);
  h.set_encoding(EncodingToProto(encoding));
  h.set_nonzeros(nonzeros);
  std::string out(1, '\0');  // the push receiver
  for (size_t at = 0; at < payload.size() || at == 0; at += chunk) {
    v1::GradientChunk c;
    if (at == 0) *c.mutable_header() = h;
    c.set_data(payload.substr(at, chunk));
    out += Part(c.SerializeAsString());
    if (payload.empty()) break;
  }
  return out;
}

// Whole weights; with `edge_round` > 0 an aggregator's copy in fedavg's
// edge rounds.
std::string WeightsStream(int64_t edge_round = 0) {
  v1::WeightsHeader h;
  h.set_version(12);
  ModelLayout layout = *ModelLayout::Create({{"0.weight", {4, 8}}, {"0.bias", {4}}});
  LayoutToProto(layout, h.mutable_layout());
  h.set_num_floats(36);
  h.mutable_mode()->set_mode(v1::MODE_SYNC);
  if (edge_round > 0) {
    h.mutable_mode()->set_mode(v1::MODE_FEDAVG);
    h.mutable_mode()->set_local_steps(20);
    h.mutable_mode()->set_edge_rounds(3);
    h.mutable_local_sgd()->set_lr(0.05);
    h.set_edge_round(edge_round);
  }
  h.set_incarnation(99);
  const std::string payload = Floats(Ramp(36));
  std::string out(1, '\1');  // the weights receiver
  for (size_t at = 0; at < payload.size(); at += 64) {
    v1::WeightsChunk c;
    if (at == 0) *c.mutable_header() = h;
    c.set_data(payload.substr(at, 64));
    out += Part(c.SerializeAsString());
  }
  return out;
}

// A delta against the weights push_stream_fuzzer's caller holds (version 3,
// incarnation 0, "w"[2,32]): bf16 (2 bytes per float) or top-k (two entries).
std::string WeightsDeltaStream(Encoding encoding) {
  v1::WeightsHeader h;
  h.set_version(4);
  LayoutToProto(*ModelLayout::Create({{"w", {2, 32}}}), h.mutable_layout());
  h.set_num_floats(64);
  h.mutable_mode()->set_mode(v1::MODE_SYNC);
  h.set_drift(0.001f);
  h.mutable_delta()->set_base_version(3);
  h.mutable_delta()->set_encoding(EncodingToProto(encoding));
  std::string payload;
  if (encoding == Encoding::kTopK) {
    h.mutable_delta()->set_nonzeros(2);
    for (uint32_t index : {5u, 40u}) {
      const float value = 0.25f * static_cast<float>(index);
      payload.append(reinterpret_cast<const char*>(&index), 4);
      payload.append(reinterpret_cast<const char*>(&value), 4);
    }
  } else {
    for (int i = 0; i < 64; ++i) {
      const uint16_t half = FloatToBfloat16(0.01f * static_cast<float>(i));
      payload.append(reinterpret_cast<const char*>(&half), 2);
    }
  }
  std::string out(1, '\1');  // the weights receiver
  for (size_t at = 0; at < payload.size(); at += 48) {
    v1::WeightsChunk c;
    if (at == 0) *c.mutable_header() = h;
    c.set_data(payload.substr(at, 48));
    out += Part(c.SerializeAsString());
  }
  return out;
}

void PushStreams() {
  Write("push_stream_fuzzer", "fp32_one_chunk", PushStream(Encoding::kFp32, 1 << 20));
  Write("push_stream_fuzzer", "fp32_chunks", PushStream(Encoding::kFp32, 96));
  Write("push_stream_fuzzer", "fp16", PushStream(Encoding::kFp16, 64));
  Write("push_stream_fuzzer", "bf16", PushStream(Encoding::kBf16, 1 << 20));
  Write("push_stream_fuzzer", "topk", PushStream(Encoding::kTopK, 16));
  Write("push_stream_fuzzer", "weights", WeightsStream());
  Write("push_stream_fuzzer", "weights_edge_round", WeightsStream(2));
  Write("push_stream_fuzzer", "weights_delta_bf16", WeightsDeltaStream(Encoding::kBf16));
  Write("push_stream_fuzzer", "weights_delta_topk", WeightsDeltaStream(Encoding::kTopK));
}

void Decoders() {
  const Encoding encodings[] = {Encoding::kFp32, Encoding::kFp16, Encoding::kBf16, Encoding::kTopK};
  for (int e = 0; e < 4; ++e) {
    CompressionOptions o;
    o.encoding = encodings[e];
    o.topk_ratio = 0.25;
    std::string payload;
    int64_t nonzeros = 0;
    if (o.encoding == Encoding::kFp32) {
      payload = Floats(Ramp(32));
    } else {
      Compressor c(o, 32);
      nonzeros = c.Encode(Ramp(32), &payload);
    }
    std::string in = {static_cast<char>(e), 32, 0, static_cast<char>(nonzeros & 0xff),
                      static_cast<char>(nonzeros >> 8)};
    Write("decoder_fuzzer", std::string(EncodingName(o.encoding)), in + payload);
  }
}

void Validators() {
  auto write = [](const std::string& name, char which, const google::protobuf::Message& m) {
    Write("validator_fuzzer", name, std::string(1, which) + m.SerializeAsString());
  };
  GradientPush g;
  g.sender = "worker-3";
  g.version = 5;
  g.samples = 64;
  g.loss_sum = 30;
  g.gradient.assign(64, 0.5f);
  g.sequence = 11;
  g.step = 5;
  write("gradient_header", 0, GradientHeaderOf(g));
  g.edge_round = 2;
  write("gradient_header_edge_round", 0, GradientHeaderOf(g));
  v1::AggregateHeader a;
  a.set_aggregator_id("agg-1");
  a.set_version(4);
  a.set_total_samples(128);
  a.set_contributor_count(2);
  a.set_loss_sum(60);
  a.set_num_floats(64);
  a.set_sequence(9);
  for (int w = 0; w < 2; ++w) {
    v1::Contributor* c = a.add_contributors();
    c->set_worker_id(absl::StrCat("worker-", w));
    c->set_sequence(20 + w);
    c->set_version(4 + w);
    c->set_step(4);
  }
  v1::VersionCount* vc = a.add_contributor_versions();
  vc->set_version(4);
  vc->set_count(1);
  vc = a.add_contributor_versions();
  vc->set_version(5);
  vc->set_count(1);
  write("aggregate_header", 1, a);
  v1::HeartbeatRequest hb;
  hb.set_member_id("agg-0");
  hb.set_incarnation(123456);
  hb.add_live_workers("worker-0");
  hb.add_live_workers("worker-2");
  hb.set_address("127.0.0.1:7001");
  write("heartbeat", 2, hb);
  v1::PullWeightsRequest pull;
  pull.set_requester_id("worker-1");
  pull.set_min_version(3);
  pull.set_incarnation(99);
  write("pull", 3, pull);
  pull.set_min_edge_round(1);
  write("pull_edge_round", 3, pull);
  v1::ModeConfig mode;
  mode.set_mode(v1::MODE_SSP);
  mode.set_staleness(2);
  write("mode", 4, mode);
  v1::ModeConfig fedavg;
  fedavg.set_mode(v1::MODE_FEDAVG);
  fedavg.set_local_steps(20);
  fedavg.set_participation(0.5);
  fedavg.set_edge_rounds(4);
  write("mode_fedavg_edge_rounds", 4, fedavg);
  v1::ModelLayout layout;
  LayoutToProto(*ModelLayout::Create({{"1.weight", {10, 20}}, {"1.bias", {10}}}), &layout);
  write("layout", 5, layout);
  v1::HeartbeatReply reply;
  reply.set_lease_ms(2000);
  reply.set_version(8);
  (*reply.mutable_data_positions())["worker-0"] = 17;
  write("heartbeat_reply", 6, reply);
  v1::StatusReply status;
  status.set_version(8);
  write("status", 7, status);
  v1::AggregatorStatus agg;
  agg.set_aggregator_id("agg-0");
  write("aggregator_status", 8, agg);
}

void MetricsRequests() {
  Write("metrics_request_fuzzer", "metrics",
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nAccept: text/plain\r\n\r\n");
  Write("metrics_request_fuzzer", "query", "GET /metrics?name=hips_version HTTP/1.1\r\n\r\n");
  Write("metrics_request_fuzzer", "index", "GET / HTTP/1.0\r\n\r\n");
  Write("metrics_request_fuzzer", "post", "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
}

#if HIPS_FUZZ_CHECKPOINT
void Checkpoints() {
  Checkpoint c;
  c.version = 40;
  c.samples_applied = 2560;
  c.mode = {Mode::kSsp, 2};
  c.mode_since = 30;
  c.layout = *ModelLayout::Create({{"1.weight", {3, 4}}, {"1.bias", {3}}});
  c.weights = Ramp(15);
  c.optimizer.name = "sgd";
  c.optimizer.buffers["1.weight/momentum_buffer"] = Ramp(12);
  c.optimizer.buffers["1.bias/momentum_buffer"] = Ramp(3);
  c.data_positions["worker-0"] = 41;
  c.sequences["agg-0"] = 40;
  c.created_unix_micros = 1764547200000000;
  absl::StatusOr<std::string> bytes = EncodeCheckpoint(c);
  if (!bytes.ok()) {
    std::fprintf(stderr, "%s\n", bytes.status().ToString().c_str());
    std::exit(1);
  }
  Write("checkpoint_fuzzer", "sgd_ssp", *bytes);
  c.optimizer = {};
  c.optimizer.name = "adam";
  c.training_done = true;
  bytes = EncodeCheckpoint(c);
  if (bytes.ok()) Write("checkpoint_fuzzer", "adam_fresh_done", *bytes);
}
#endif

}  // namespace
}  // namespace hips::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: hips-fuzz-seeds DIR\n");
    return 2;
  }
  hips::fuzz::dir = argv[1];
  mkdir(argv[1], 0755);
  hips::fuzz::PushStreams();
  hips::fuzz::Decoders();
  hips::fuzz::Validators();
  hips::fuzz::MetricsRequests();
#if HIPS_FUZZ_CHECKPOINT
  hips::fuzz::Checkpoints();
#endif
  return 0;
}
