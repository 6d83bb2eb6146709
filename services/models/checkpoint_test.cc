// The checksum that is part of the checkpoint format.

#include "services/models/checkpoint.h"

#include <cmath>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace hips {
namespace {

// A checkpoint with every field set, for the checksum tests.
Checkpoint Full() {
  Checkpoint c;
  c.version = 12;
  c.samples_applied = 768;
  c.training_done = false;
  c.mode = {Mode::kSsp, 2};
  c.mode_since = 10;
  c.layout = *ModelLayout::Create({{"1.weight", {2, 3}}, {"1.bias", {2}}});
  c.weights = {1, 2, 3, 4, 5, 6, 7, 8};
  c.optimizer.name = "adam";
  c.optimizer.buffers["1.weight/exp_avg"] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f};
  c.optimizer.buffers["1.bias/exp_avg"] = {0.7f, 0.8f};
  c.optimizer.steps["1.weight"] = 12;
  c.optimizer.steps["1.bias"] = 12;
  c.data_positions = {{"w0", 6}, {"w1", 7}};
  c.sequences = {{"agg0", 1700000000000000}};
  c.created_unix_micros = 1700000000123456;
  return c;
}

TEST(ChecksumTest, IsStableAcrossRunsAndBuilds) {
  EXPECT_EQ(ChecksumOf(Full()), ChecksumOf(Full()));
  // The canonical encoding is part of the file format: a change of this
  // value breaks every stored checkpoint. (Computed independently with
  // Python's zlib.crc32 over struct.pack('<q', ...) integers, length-prefixed
  // strings and '<f' floats, in the order ChecksumOf documents.)
  EXPECT_EQ(ChecksumOf(Full()), 3933241946u);
}

TEST(ChecksumTest, ChangesWhenAnyFieldChanges) {
  const std::vector<std::pair<std::string, std::function<void(Checkpoint&)>>> changes = {
      {"version", [](Checkpoint& c) { c.version++; }},
      {"samples_applied", [](Checkpoint& c) { c.samples_applied++; }},
      {"training_done", [](Checkpoint& c) { c.training_done = true; }},
      {"mode",
       [](Checkpoint& c) {
         c.mode = {Mode::kAsync, 0};
       }},
      {"staleness", [](Checkpoint& c) { c.mode.staleness = 3; }},
      {"mode_since", [](Checkpoint& c) { c.mode_since++; }},
      {"layout name",
       [](Checkpoint& c) {
         c.layout = *ModelLayout::Create({{"1.weight", {2, 3}}, {"1.biaz", {2}}});
       }},
      {"layout shape",
       [](Checkpoint& c) {
         c.layout = *ModelLayout::Create({{"1.weight", {3, 2}}, {"1.bias", {2}}});
       }},
      {"weight", [](Checkpoint& c) { c.weights[7] = std::nextafter(c.weights[7], 9.0f); }},
      {"first weight", [](Checkpoint& c) { c.weights[0] = -c.weights[0]; }},
      {"optimizer name", [](Checkpoint& c) { c.optimizer.name = "sgd"; }},
      {"optimizer buffer", [](Checkpoint& c) { c.optimizer.buffers["1.bias/exp_avg"][1] = 0.9f; }},
      {"optimizer buffer key",
       [](Checkpoint& c) {
         c.optimizer.buffers["1.bias/exp_avg_sq"] = c.optimizer.buffers["1.bias/exp_avg"];
         c.optimizer.buffers.erase("1.bias/exp_avg");
       }},
      {"optimizer step", [](Checkpoint& c) { c.optimizer.steps["1.bias"] = 11; }},
      {"data position", [](Checkpoint& c) { c.data_positions["w1"] = 8; }},
      {"data position id",
       [](Checkpoint& c) {
         c.data_positions = {{"w0", 6}, {"w2", 7}};
       }},
      {"sequence", [](Checkpoint& c) { c.sequences["agg0"]++; }},
      {"new sequence", [](Checkpoint& c) { c.sequences["agg1"] = 0; }},
      {"created", [](Checkpoint& c) { c.created_unix_micros++; }},
      {"lr_scale", [](Checkpoint& c) { c.lr_scale = 0.5; }},
      {"rollbacks", [](Checkpoint& c) { c.rollbacks = 1; }},
      {"diverged_version", [](Checkpoint& c) { c.diverged_version = 3; }},
      {"forgotten_before", [](Checkpoint& c) { c.forgotten_before = 5; }},
      {"incarnations", [](Checkpoint& c) { c.incarnations["agg0"] = {9}; }},
      {"a retired incarnation",
       [](Checkpoint& c) {
         c.incarnations["agg0"] = {9};
         const uint32_t one = ChecksumOf(c);
         c.incarnations["agg0"].push_back(8);
         EXPECT_NE(ChecksumOf(c), one);
       }},
      // Counts keep entries from moving between neighbouring maps.
      {"entry moved",
       [](Checkpoint& c) {
         c.data_positions.erase("w1");
         c.sequences["w1"] = 7;
       }},
  };
  const uint32_t base = ChecksumOf(Full());
  for (const auto& [what, change] : changes) {
    Checkpoint c = Full();
    change(c);
    EXPECT_NE(ChecksumOf(c), base) << what;
  }
}

}  // namespace
}  // namespace hips
