// The LibTorch checkpoint codec: exact round trips of weights and optimizer
// state, damaged bytes, optimizers continuing bit for bit from a checkpoint,
// and Python's torch.load reading what the store wrote.

#include "services/models/checkpoint_codec.h"

#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/models/checkpoint.h"
#include "services/models/model.h"
#include "services/models/optimizer.h"

namespace hips {
namespace {

namespace fs = std::filesystem;

using ::testing::HasSubstr;

// fullmlp 8-5-5-10: small enough to damage every byte of its checkpoint.
ModelOptions SmallModel() {
  ModelOptions o;
  o.name = "fullmlp";
  o.input_shape = {8};
  o.fullmlp_layers = 3;
  o.fullmlp_width = 5;
  return o;
}

OptimizerOptions Sgd() {
  OptimizerOptions o;
  o.name = "sgd";
  o.momentum = 0.9;
  o.weight_decay = 1e-4;
  return o;
}

OptimizerOptions Adam() {
  OptimizerOptions o;
  o.name = "adam";
  o.learning_rate = 1e-3;
  o.weight_decay = 1e-4;
  return o;
}

std::unique_ptr<Optimizer> MakeOptimizer(const ModelOptions& model,
                                         const OptimizerOptions& optimizer, uint64_t seed = 3) {
  absl::StatusOr<std::unique_ptr<Model>> m = Model::Create(model, seed);
  EXPECT_TRUE(m.ok()) << m.status();
  absl::StatusOr<std::unique_ptr<Optimizer>> o = CreateTorchOptimizer(optimizer, *std::move(m));
  EXPECT_TRUE(o.ok()) << o.status();
  return o.ok() ? *std::move(o) : nullptr;
}

ModelLayout LayoutOf(const ModelOptions& options) { return (*Model::Create(options, 1))->layout(); }

// The same pseudo-random gradients for every optimizer fed `seed`.
class Gradients {
 public:
  Gradients(int64_t size, uint32_t seed) : values_(size), rng_(seed) {}
  absl::Span<const float> Next() {
    std::uniform_real_distribution<float> u(-1, 1);
    for (float& v : values_) v = u(rng_);
    return values_;
  }

 private:
  std::vector<float> values_;
  std::mt19937 rng_;
};

void StepTimes(Optimizer* optimizer, Gradients* gradients, int steps) {
  for (int i = 0; i < steps; ++i) {
    ASSERT_TRUE(optimizer->Step(gradients->Next(), 0.05).ok());
  }
}

std::vector<float> WeightsOf(const Optimizer& optimizer) {
  std::vector<float> w(optimizer.num_floats());
  optimizer.GetWeights(absl::MakeSpan(w));
  return w;
}

// A checkpoint of `optimizer` (over `layout`) with every other field set.
Checkpoint CheckpointOf(const Optimizer& optimizer, const ModelLayout& layout) {
  Checkpoint c;
  c.version = 17;
  c.samples_applied = 17 * 256;
  c.training_done = true;
  c.mode = {Mode::kSsp, 3};
  c.mode_since = 9;
  c.layout = layout;
  c.weights = WeightsOf(optimizer);
  absl::StatusOr<OptimizerState> state = optimizer.ExportState();
  EXPECT_TRUE(state.ok()) << state.status();
  if (state.ok()) c.optimizer = *std::move(state);
  c.data_positions = {{"worker-0", 40}, {"worker-1", 41}};
  c.sequences = {{"aggregator-0", 1700000000000123}, {"aggregator-1", 1700000000000456}};
  c.created_unix_micros = 1700000001234567;
  return c;
}

void ExpectSameCheckpoint(const Checkpoint& a, const Checkpoint& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.samples_applied, b.samples_applied);
  EXPECT_EQ(a.training_done, b.training_done);
  EXPECT_EQ(a.mode, b.mode);
  EXPECT_EQ(a.mode_since, b.mode_since);
  EXPECT_EQ(a.layout, b.layout);
  EXPECT_EQ(a.weights, b.weights);
  EXPECT_EQ(a.optimizer, b.optimizer);
  EXPECT_EQ(a.data_positions, b.data_positions);
  EXPECT_EQ(a.sequences, b.sequences);
  EXPECT_EQ(a.created_unix_micros, b.created_unix_micros);
  EXPECT_EQ(a.lr_scale, b.lr_scale);
  EXPECT_EQ(a.rollbacks, b.rollbacks);
  EXPECT_EQ(a.diverged_version, b.diverged_version);
  EXPECT_EQ(a.diverged_reason, b.diverged_reason);
  EXPECT_EQ(a.forgotten_before, b.forgotten_before);
  EXPECT_EQ(a.incarnations, b.incarnations);
}

absl::StatusOr<Checkpoint> RoundTrip(const Checkpoint& c) {
  absl::StatusOr<std::string> bytes = EncodeCheckpoint(c);
  if (!bytes.ok()) return bytes.status();
  return DecodeCheckpoint(*bytes);
}

class OptimizerCheckpointTest : public ::testing::TestWithParam<std::string> {
 protected:
  OptimizerOptions Options() const { return GetParam() == "sgd" ? Sgd() : Adam(); }
};

TEST_P(OptimizerCheckpointTest, RoundTripsExactly) {
  ModelOptions mlp;  // the default 784-256-256-10 network
  std::unique_ptr<Optimizer> optimizer = MakeOptimizer(mlp, Options());
  Gradients gradients(optimizer->num_floats(), 1);
  StepTimes(optimizer.get(), &gradients, 3);
  const Checkpoint original = CheckpointOf(*optimizer, LayoutOf(mlp));
  // Every tensor has its state after a step.
  EXPECT_EQ(original.optimizer.buffers.size(),
            original.layout.tensors().size() * (GetParam() == "sgd" ? 1 : 2));
  if (GetParam() == "adam") {
    EXPECT_EQ(original.optimizer.steps.at("1.weight"), 3);
  }

  absl::StatusOr<Checkpoint> decoded = RoundTrip(original);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectSameCheckpoint(*decoded, original);
}

TEST_P(OptimizerCheckpointTest, RoundTripsBeforeTheFirstStep) {
  std::unique_ptr<Optimizer> optimizer = MakeOptimizer(SmallModel(), Options());
  const Checkpoint original = CheckpointOf(*optimizer, LayoutOf(SmallModel()));
  EXPECT_TRUE(original.optimizer.buffers.empty());
  absl::StatusOr<Checkpoint> decoded = RoundTrip(original);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  ExpectSameCheckpoint(*decoded, original);
}

// Optimizer A steps, is checkpointed (through the codec), and a fresh
// optimizer B (other initial weights) continues from the checkpoint: both
// then produce the same weights, bit for bit, from the same gradients.
TEST_P(OptimizerCheckpointTest, ContinuesBitForBitFromACheckpoint) {
  const ModelOptions model = SmallModel();
  std::unique_ptr<Optimizer> a = MakeOptimizer(model, Options(), 3);
  Gradients gradients_a(a->num_floats(), 7);
  StepTimes(a.get(), &gradients_a, 4);
  absl::StatusOr<Checkpoint> checkpoint = RoundTrip(CheckpointOf(*a, LayoutOf(model)));
  ASSERT_TRUE(checkpoint.ok()) << checkpoint.status();

  std::unique_ptr<Optimizer> b = MakeOptimizer(model, Options(), 99);
  std::unique_ptr<Optimizer> weights_only = MakeOptimizer(model, Options(), 99);
  ASSERT_NE(WeightsOf(*b), WeightsOf(*a));
  ASSERT_TRUE(b->SetWeights(checkpoint->weights).ok());
  ASSERT_TRUE(b->ImportState(checkpoint->optimizer).ok());
  ASSERT_TRUE(weights_only->SetWeights(checkpoint->weights).ok());
  ASSERT_EQ(b->ExportState().value(), a->ExportState().value());

  // Same gradient sequence for all three from here on.
  Gradients gradients_b = gradients_a, gradients_c = gradients_a;
  StepTimes(a.get(), &gradients_a, 5);
  StepTimes(b.get(), &gradients_b, 5);
  StepTimes(weights_only.get(), &gradients_c, 5);
  EXPECT_EQ(WeightsOf(*b), WeightsOf(*a));
  EXPECT_EQ(b->ExportState().value(), a->ExportState().value());
  // Without the optimizer state the runs part (the test can tell).
  EXPECT_NE(WeightsOf(*weights_only), WeightsOf(*a));
}

TEST_P(OptimizerCheckpointTest, ImportRefusesStateThatDoesNotFit) {
  std::unique_ptr<Optimizer> optimizer = MakeOptimizer(SmallModel(), Options());
  Gradients gradients(optimizer->num_floats(), 1);
  StepTimes(optimizer.get(), &gradients, 2);
  const OptimizerState good = optimizer->ExportState().value();
  const std::string buffer = GetParam() == "sgd" ? "1.weight/momentum_buffer" : "1.weight/exp_avg";
  ASSERT_EQ(good.buffers.count(buffer), 1u);

  std::vector<std::pair<std::string, OptimizerState>> bad;
  OptimizerState s = good;
  s.name = GetParam() == "sgd" ? "adam" : "sgd";
  bad.emplace_back("other optimizer", s);
  s = good;
  s.buffers["9.weight/" + buffer.substr(buffer.find('/') + 1)] = good.buffers.at(buffer);
  bad.emplace_back("unknown tensor", s);
  s = good;
  s.buffers["1.weight/velocity"] = good.buffers.at(buffer);
  bad.emplace_back("unknown buffer", s);
  s = good;
  s.buffers["momentum_buffer"] = good.buffers.at(buffer);
  bad.emplace_back("key without a tensor", s);
  s = good;
  s.buffers[buffer].pop_back();
  bad.emplace_back("short buffer", s);
  s = good;
  s.steps["1.bias"] = 1;
  if (GetParam() == "adam") s.steps.erase("1.weight");
  bad.emplace_back("steps out of line", s);

  for (const auto& [what, state] : bad) {
    const absl::Status status = optimizer->ImportState(state);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << what << ": " << status;
    EXPECT_EQ(optimizer->ExportState().value(), good) << what << " changed the state";
  }
  EXPECT_TRUE(absl::IsInvalidArgument(optimizer->SetWeights(std::vector<float>(3))));
}

INSTANTIATE_TEST_SUITE_P(SgdAndAdam, OptimizerCheckpointTest, ::testing::Values("sgd", "adam"));

Checkpoint SmallCheckpoint() {
  std::unique_ptr<Optimizer> optimizer = MakeOptimizer(SmallModel(), Adam());
  Gradients gradients(optimizer->num_floats(), 1);
  StepTimes(optimizer.get(), &gradients, 2);
  return CheckpointOf(*optimizer, LayoutOf(SmallModel()));
}

// Where the raw floats of the checkpoint's last weight tensor start in `bytes`.
size_t FindLastTensor(const Checkpoint& c, const std::string& bytes) {
  const int64_t last = static_cast<int64_t>(c.layout.tensors().size()) - 1;
  return bytes.find(std::string(
      reinterpret_cast<const char*>(c.weights.data() + c.layout.offset(last)), 4 * sizeof(float)));
}

TEST(CheckpointCodecTest, BuffersRoundTripAndOldFilesHaveNone) {
  Checkpoint c;
  c.layout = *ModelLayout::Create(
      {{"0.weight", {2, 2}}, {"1.running_mean", {2}, true}, {"1.running_var", {2}, true}});
  c.weights = {1, 2, 3, 4, 0.5f, -0.5f, 1.5f, 2.5f};
  absl::StatusOr<Checkpoint> back = RoundTrip(c);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameCheckpoint(c, *back);
  EXPECT_TRUE(back->layout.tensors()[2].buffer);
  // The same weights without buffers keep the checksum a file written before
  // buffers existed has.
  Checkpoint plain = c;
  plain.layout =
      *ModelLayout::Create({{"0.weight", {2, 2}}, {"1.running_mean", {2}}, {"1.running_var", {2}}});
  EXPECT_NE(ChecksumOf(plain), ChecksumOf(c));
  back = RoundTrip(plain);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_FALSE(back->layout.tensors()[2].buffer);
}

TEST(CheckpointCodecTest, FedAvgModeRoundTripsWithItsEdgeRounds) {
  Checkpoint c;
  c.layout = *ModelLayout::Create({{"0.weight", {2, 2}}});
  c.weights = {1, 2, 3, 4};
  c.version = 5;
  c.mode_since = 2;
  for (int64_t edge_rounds : {1, 4}) {
    absl::StatusOr<ModeConfig> mode = MakeModeConfig("fedavg", 0, 20, 0.5, edge_rounds);
    ASSERT_TRUE(mode.ok()) << mode.status();
    c.mode = *mode;
    absl::StatusOr<Checkpoint> back = RoundTrip(c);
    ASSERT_TRUE(back.ok()) << back.status();
    ExpectSameCheckpoint(c, *back);
    EXPECT_EQ(back->mode.edge_rounds, edge_rounds);
  }
  // The edge rounds are in the checksum (E = 1 keeps the sum it had before
  // edge rounds existed).
  Checkpoint one = c;
  one.mode.edge_rounds = 1;
  EXPECT_NE(ChecksumOf(one), ChecksumOf(c));
}

TEST(CheckpointCodecTest, FedProxAndHqBufferRoundTripAndAreSummed) {
  Checkpoint c;
  c.layout = *ModelLayout::Create({{"0.weight", {2, 2}}});
  c.weights = {1, 2, 3, 4};
  c.version = 5;
  ModeKnobs k;
  k.local_steps = 20;
  k.proximal_mu = 0.01;
  k.hq_buffer = 3;
  k.staleness_weighting = StalenessWeighting::kPolynomial;
  k.staleness_exponent = 0.75;
  for (const char* name : {"fedavg", "sync"}) {
    absl::StatusOr<ModeConfig> mode = MakeModeConfig(name, k);
    ASSERT_TRUE(mode.ok()) << mode.status();
    c.mode = *mode;
    absl::StatusOr<Checkpoint> back = RoundTrip(c);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(back->mode, c.mode) << name;
  }
  // Each is in the checksum (unset, a checkpoint keeps its old sum).
  Checkpoint other = c;
  other.mode.staleness_exponent = 0.5;
  EXPECT_NE(ChecksumOf(other), ChecksumOf(c));
  other = c;
  other.mode.hq_buffer = 4;
  EXPECT_NE(ChecksumOf(other), ChecksumOf(c));
  c.mode = *MakeModeConfig("fedavg", k);
  other = c;
  other.mode.proximal_mu = 0.02;
  EXPECT_NE(ChecksumOf(other), ChecksumOf(c));
}

TEST(CheckpointCodecTest, ADivergedRunRoundTripsItsRollbacksAndWhereItStopped) {
  Checkpoint c;
  c.layout = *ModelLayout::Create({{"0.weight", {2, 2}}});
  c.weights = {1, 2, 3, 4};
  c.version = 9;
  const uint32_t healthy = ChecksumOf(c);
  c.lr_scale = 0.25;
  c.rollbacks = 2;
  absl::StatusOr<Checkpoint> back = RoundTrip(c);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameCheckpoint(c, *back);
  EXPECT_NE(ChecksumOf(c), healthy);
  c.diverged_version = 8;
  c.diverged_reason = "a weight after the step is nan at float 3 of 4";
  c.forgotten_before = 7;  // (bounded state: a horizon)
  c.incarnations = {{"aggregator-0", {5'000'000'000'000'000'001, 42}}, {"aggregator-1", {7}}};
  c.training_done = true;
  back = RoundTrip(c);
  ASSERT_TRUE(back.ok()) << back.status();
  ExpectSameCheckpoint(c, *back);
  Checkpoint other_reason = c;
  other_reason.diverged_reason = "another";
  EXPECT_NE(ChecksumOf(other_reason), ChecksumOf(c));
  // A run that never diverged writes none of it (and keeps the checksum
  // its files had before).
  Checkpoint plain;
  plain.layout = c.layout;
  plain.weights = c.weights;
  plain.version = 9;
  EXPECT_EQ(ChecksumOf(plain), healthy);
  const std::string bytes = EncodeCheckpoint(plain).value();
  EXPECT_EQ(bytes.find("rollbacks"), std::string::npos);
  back = RoundTrip(plain);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->lr_scale, 1.0);
  EXPECT_EQ(back->diverged_version, -1);
}

TEST(CheckpointCodecTest, FlippedTensorByteIsDataLoss) {
  const Checkpoint original = SmallCheckpoint();
  std::string bytes = EncodeCheckpoint(original).value();
  const size_t at = FindLastTensor(original, bytes);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 5] ^= 0x10;
  const absl::StatusOr<Checkpoint> decoded = DecodeCheckpoint(bytes);
  EXPECT_TRUE(absl::IsDataLoss(decoded.status())) << decoded.status();
  EXPECT_THAT(decoded.status().message(), HasSubstr("CRC mismatch"));
}

// Damage that comes with a valid file CRC (a bug upstream of the write, say)
// is still caught, by the checksum over the decoded fields.
TEST(CheckpointCodecTest, ResealedDamageIsCaughtByTheChecksum) {
  const Checkpoint original = SmallCheckpoint();
  std::string bytes = EncodeCheckpoint(original).value();
  const size_t at = FindLastTensor(original, bytes);
  ASSERT_NE(at, std::string::npos);
  bytes[at + 5] ^= 0x10;
  // The file's last 8 characters are the hex CRC-32 of what precedes
  // "hips-crc32 " (checkpoint_codec.h).
  const size_t body = bytes.size() - std::strlen("hips-crc32 ") - 8;
  const uLong crc =
      crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(bytes.data()), body);
  bytes.replace(bytes.size() - 8, 8, absl::StrCat(absl::Hex(crc, absl::kZeroPad8)));
  const absl::StatusOr<Checkpoint> decoded = DecodeCheckpoint(bytes);
  EXPECT_TRUE(absl::IsDataLoss(decoded.status())) << decoded.status();
  EXPECT_THAT(decoded.status().message(), HasSubstr("checksum mismatch"));
}

TEST(CheckpointCodecTest, EveryTruncationAndGarbageIsDataLoss) {
  const std::string bytes = EncodeCheckpoint(SmallCheckpoint()).value();
  for (size_t size = 0; size < bytes.size(); ++size) {
    const absl::StatusOr<Checkpoint> decoded = DecodeCheckpoint(bytes.substr(0, size));
    ASSERT_TRUE(absl::IsDataLoss(decoded.status())) << size << ": " << decoded.status();
  }
  EXPECT_TRUE(absl::IsDataLoss(DecodeCheckpoint("PK\x03\x04 not really a zip").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeCheckpoint(std::string(5000, '\0')).status()));
  // Intact bytes of a plain zip archive that are no checkpoint (pickle_save
  // output without the seal).
  std::string unsealed = bytes.substr(0, bytes.size() - std::strlen("hips-crc32 ") - 8);
  unsealed[unsealed.size() - 2] = unsealed[unsealed.size() - 1] = '\0';
  EXPECT_TRUE(absl::IsDataLoss(DecodeCheckpoint(unsealed).status()));
}

// A flipped byte anywhere in the file is DATA_LOSS, never a crash.
TEST(CheckpointCodecTest, EveryDamagedByteIsDataLoss) {
  const std::string bytes = EncodeCheckpoint(SmallCheckpoint()).value();
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string damaged = bytes;
    damaged[i] ^= 0x5a;
    const absl::StatusOr<Checkpoint> decoded = DecodeCheckpoint(damaged);
    ASSERT_TRUE(absl::IsDataLoss(decoded.status())) << "byte " << i << ": " << decoded.status();
  }
}

TEST(CheckpointCodecTest, EncodeRefusesWhatDoesNotFitTheLayout) {
  Checkpoint c = SmallCheckpoint();
  c.weights.pop_back();
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeCheckpoint(c).status()));
  c = SmallCheckpoint();
  c.optimizer.buffers["7.weight/exp_avg"] = {1, 2};
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeCheckpoint(c).status()));
  c = SmallCheckpoint();
  c.optimizer.buffers["1.bias/exp_avg"].push_back(1);
  EXPECT_TRUE(absl::IsInvalidArgument(EncodeCheckpoint(c).status()));
}

// Runs a command and returns its exit status and output (stdout and stderr).
int RunCommand(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) output->append(buffer, n);
  return pclose(pipe);
}

// What HQ writes, Python reads: torch.load, then load_state_dict into
// the same torch.nn.Sequential.
TEST(CheckpointCodecTest, PythonLoadsTheCheckpointWithTorchLoad) {
  std::string ignored;
  if (RunCommand("/usr/bin/python3 -c 'import torch'", &ignored) != 0) {
    GTEST_SKIP() << "/usr/bin/python3 cannot import torch (apt-get install python3-torch): "
                 << ignored;
  }
  ModelOptions mlp;
  std::unique_ptr<Optimizer> optimizer = MakeOptimizer(mlp, Sgd());
  Gradients gradients(optimizer->num_floats(), 5);
  StepTimes(optimizer.get(), &gradients, 2);
  const Checkpoint checkpoint = CheckpointOf(*optimizer, LayoutOf(mlp));

  const fs::path dir = fs::path(::testing::TempDir()) / absl::StrCat("codec_test_", getpid());
  fs::remove_all(dir);
  fs::create_directories(dir);
  absl::StatusOr<std::string> bytes = EncodeCheckpoint(checkpoint);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const std::string path = (dir / "checkpoint-000000000017.pt").string();
  std::ofstream(path, std::ios::binary) << *bytes;

  const std::string script =
      "import sys, torch\n"
      "ck = torch.load(sys.argv[1])\n"
      "net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(),\n"
      "    torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10))\n"
      "net.load_state_dict(ck['weights'])\n"
      "print(ck['format'], ck['version'], ck['mode'], ck['staleness'],"
      " ck['data_positions']['worker-1'], ck['optimizer']['name'])\n"
      "print(repr(net[5].bias[3].item()))\n"
      "print(repr(ck['optimizer']['state']['5.bias/momentum_buffer'][3].item()))\n";
  std::string output;
  const int status =
      RunCommand(absl::StrCat("/usr/bin/python3 -c \"", script, "\" ", path), &output);
  fs::remove_all(dir);
  ASSERT_EQ(status, 0) << output;

  const std::vector<std::string> lines = absl::StrSplit(output, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 3u) << output;
  // Python may warn first (e.g. about numpy); the answers are the last lines.
  const size_t first = lines.size() - 3;
  EXPECT_EQ(lines[first], "hips-checkpoint-1 17 ssp 3 41 sgd");
  const size_t bias = 5;  // 5.bias in the mlp's layout
  ASSERT_EQ(checkpoint.layout.tensors()[bias].name, "5.bias");
  double weight, momentum;
  ASSERT_TRUE(absl::SimpleAtod(lines[first + 1], &weight)) << output;
  ASSERT_TRUE(absl::SimpleAtod(lines[first + 2], &momentum)) << output;
  EXPECT_EQ(weight, static_cast<double>(checkpoint.weights[checkpoint.layout.offset(bias) + 3]));
  EXPECT_EQ(momentum,
            static_cast<double>(checkpoint.optimizer.buffers.at("5.bias/momentum_buffer")[3]));
}

}  // namespace
}  // namespace hips
