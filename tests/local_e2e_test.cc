// `hips local` as a user runs it: real processes on 127.0.0.1, Fashion-MNIST,
// a reduced budget. Checks the summary's numbers, not just the exit code.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace hips {
namespace {

const std::string kBin = HIPS_BIN_DIR;

// A file make_test_npz.py wrote.
std::string Npz(const std::string& name) { return absl::StrCat(HIPS_TEST_NPZ, "/", name); }

// A directory of its own for one `hips local` run (its logs and checkpoints).
std::string NewRunDir(const std::string& name) {
  std::string tmpl = absl::StrCat(::testing::TempDir(), "/hips-", name, "-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) return ::testing::TempDir();
  return tmpl;
}

struct CommandResult {
  int exit_code = -1;
  std::string output;
};

// Runs a shell command line, capturing stdout and stderr together.
CommandResult Shell(const std::string& command) {
  CommandResult r;
  FILE* p = popen(absl::StrCat(command, " 2>&1").c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) r.output.append(buf, n);
  const int status = pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

// The summary JSON a run wrote (null if it is missing or not JSON).
nlohmann::json ReadSummary(const std::string& path) {
  std::ifstream in(path);
  nlohmann::json summary = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return summary.is_object() ? summary : nlohmann::json();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int64_t SumOf(const nlohmann::json& counts) {
  int64_t total = 0;
  for (const auto& [key, n] : counts.items()) total += n.get<int64_t>();
  return total;
}

// received = applied + duplicate + dropped + pending, at HQ and at every
// aggregator, from a summary.
void ExpectGradientsAccountedFor(const nlohmann::json& s) {
  ASSERT_TRUE(s.is_object());
  const nlohmann::json& g = s["gradients"];
  EXPECT_EQ(g["received"].get<int64_t>(), g["applied"].get<int64_t>() +
                                              g["duplicate"].get<int64_t>() + SumOf(g["dropped"]) +
                                              g["pending"].get<int64_t>())
      << s.dump();
  // Every aggregator's side, and what they handed to HQ.
  int64_t forwarded = 0, pending = 0;
  ASSERT_EQ(s["aggregators"].size(), 2u) << s.dump();
  for (const nlohmann::json& a : s["aggregators"]) {
    EXPECT_EQ(a["gradients_received"].get<int64_t>(),
              a["gradients_duplicate"].get<int64_t>() + SumOf(a["gradients_dropped"]) +
                  a["gradients_forwarded"].get<int64_t>() + a["gradients_pending"].get<int64_t>() +
                  a["gradients_edge_applied"].get<int64_t>())
        << a.dump();
    forwarded += a["gradients_forwarded"].get<int64_t>();
    pending += a["gradients_pending"].get<int64_t>();
  }
  // HQ counts an aggregate when it arrives, its aggregator when HQ's answer
  // does: one may be in between.
  EXPECT_LE(forwarded, g["received"].get<int64_t>()) << s.dump();
  EXPECT_LE(g["received"].get<int64_t>(), forwarded + pending) << s.dump();
}

TEST(LocalClusterTest, TrainsFashionMnistToAccuracyAndReportsExactCounts) {
  const std::string dir = NewRunDir("local");
  const std::string json = absl::StrCat(dir, "/local_summary.json");
  std::remove(json.c_str());
  // 2 epochs of 60000 examples at 4 workers x 64 = 469 versions.
  // --summary-json as the interface spells it (with a space), the rest as
  // Abseil spells flags.
  const CommandResult run = Shell(absl::StrCat(kBin, "/hips local --epochs=2 --progress_seconds=1",
                                               " --summary-json ", json, " --run_dir=", dir));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  // The split in one line: 60,000 examples, i mod 4, each class's 6,000
  // dealt evenly (1,500 a home: 10% of its examples).
  EXPECT_NE(run.output.find("hips local: data iid, 4 homes: examples min/median/max "
                            "15000/15000/15000, classes holding 5% or more of a home's examples "
                            "min/median/max 10/10/10\n"),
            std::string::npos)
      << run.output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << run.output;
  for (const char* key :
       {"version", "accuracy", "f1", "samples", "seconds", "mode", "gradients", "staleness_counts",
        "max_staleness", "aggregators", "bytes", "restarts"}) {
    ASSERT_TRUE(s.contains(key)) << key << "\n" << s.dump();
  }
  EXPECT_EQ(s["mode"], "sync");
  EXPECT_EQ(s["version"], 469);
  // Every gradient of every round was applied, none stale.
  const nlohmann::json& g = s["gradients"];
  EXPECT_EQ(g["received"], 469 * 4);
  EXPECT_EQ(g["applied"], 469 * 4);
  EXPECT_EQ(g["duplicate"], 0);
  EXPECT_EQ(g["pending"], 0);
  EXPECT_EQ(SumOf(g["dropped"]), 0);
  EXPECT_EQ(s["max_staleness"], 0);
  ExpectGradientsAccountedFor(s);
  EXPECT_EQ(s["samples"], 469 * 4 * 64);
  // Uncompressed hops: every gradient and aggregate is 269,322 float32.
  EXPECT_EQ(s["bytes"]["worker_to_aggregator"], int64_t{469} * 4 * 269322 * 4);
  EXPECT_EQ(s["bytes"]["aggregator_to_hq"], int64_t{469} * 2 * 269322 * 4);
  EXPECT_GE(s["accuracy"].get<double>(), 0.80) << run.output;
  EXPECT_LE(s["accuracy"].get<double>(), 1.0);
  EXPECT_GE(s["f1"].get<double>(), 0.78);
  EXPECT_LE(s["f1"].get<double>(), 1.0);
  EXPECT_GT(s["seconds"].get<double>(), 0);
  // The last line is the summary line, with the same numbers.
  const std::regex final_line(
      "final: version=469 accuracy=0\\.[0-9]{4} f1=0\\.[0-9]{4} samples=120064 seconds=[0-9.]+\n$");
  EXPECT_TRUE(std::regex_search(run.output, final_line)) << run.output;
  EXPECT_NE(run.output.find("version="), std::string::npos);  // progress lines
}

// A learning rate no run survives: HQ names the divergence and the run
// ends at once with exit 3 (it hung at version 2 before).
TEST(DivergenceTest, ALearningRateOf1e6EndsTheRunWithExit3AndSaysWhere) {
  const std::string dir = NewRunDir("diverge");
  const std::string json = absl::StrCat(dir, "/summary.json");
  const CommandResult run = Shell(absl::StrCat(kBin, "/hips local --lr=1e6 --max_versions=300",
                                               " --summary_json=", json, " --run_dir=", dir));
  ASSERT_EQ(run.exit_code, 3) << run.output;
  const std::regex last_line("\ndiverged at version [0-9]+: [^\n]*non-finite[^\n]*\n$");
  EXPECT_TRUE(std::regex_search(run.output, last_line)) << run.output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << run.output;
  ASSERT_TRUE(s["diverged"].is_object()) << s.dump();
  const int64_t version = s["diverged"]["version"].get<int64_t>();
  EXPECT_LT(version, 20) << s.dump();
  EXPECT_NE(run.output.find(absl::StrCat("diverged at version ", version, ": ",
                                         s["diverged"]["reason"].get<std::string>())),
            std::string::npos)
      << run.output;
  EXPECT_EQ(s["rollbacks"], 0);
  // The run ended with the last finite weights, published once more.
  EXPECT_EQ(s["version"], version + 1);
  // HQ's log says it too.
  EXPECT_NE(ReadFile(absl::StrCat(dir, "/hq.log")).find("diverged at version"), std::string::npos);
  ExpectGradientsAccountedFor(s);
}

// lr=1 diverges around version 15; rolled back with half (then a quarter
// of) the rate, the run finishes its budget and learns.
TEST(DivergenceTest, RollbackFinishesTheBudgetAndCountsItsRollbacks) {
  const std::string dir = NewRunDir("rollback");
  const std::string json = absl::StrCat(dir, "/summary.json");
  const CommandResult run =
      Shell(absl::StrCat(kBin, "/hips local --lr=1 --on_divergence=rollback --max_versions=300",
                         " --summary_json=", json, " --run_dir=", dir));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << run.output;
  EXPECT_EQ(s["version"], 300);
  EXPECT_TRUE(s["diverged"].is_null()) << s.dump();
  const int64_t rollbacks = s["rollbacks"].get<int64_t>();
  EXPECT_GE(rollbacks, 1) << s.dump();
  EXPECT_LE(rollbacks, 3) << s.dump();
  EXPECT_NE(run.output.find(absl::StrCat("rollbacks: ", rollbacks)), std::string::npos)
      << run.output;
  EXPECT_GE(s["accuracy"].get<double>(), 0.75) << run.output;
  // Each rollback is logged.
  const std::string log = ReadFile(absl::StrCat(dir, "/hq.log"));
  int64_t logged = 0;
  for (size_t at = log.find("rolled back to"); at != std::string::npos;
       at = log.find("rolled back to", at + 1)) {
    ++logged;
  }
  EXPECT_EQ(logged, rollbacks) << log;
  ExpectGradientsAccountedFor(s);
}

// A straggler holds every round up for 1.5 s, more than two leases of
// 0.4 s: the progress line names whom HQ's round waits for (the aggregator)
// and whom that aggregator waits for (the straggler).
TEST(LocalClusterTest, AProgressLineSaysWhomAWaitingRoundWaitsFor) {
  const std::string dir = NewRunDir("waiting");
  const CommandResult run = Shell(absl::StrCat(
      kBin, "/hips local --max_versions=5 --slow_workers=3 --step_delay_ms=1500 --lease_ms=400",
      " --progress_seconds=0.5 --run_dir=", dir));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  // Worker 3 is aggregator 1's (worker k's is k % 2).
  const std::regex waiting(
      "version=[0-9]+ [^\n]* \\| hq's round of version [0-9]+ has waited [0-9.]+s for agg-1; "
      "agg-1's round of version [0-9]+ has waited [0-9.]+s for [a-z-]*3\n");
  EXPECT_TRUE(std::regex_search(run.output, waiting)) << run.output;
}

TEST(LocalClusterTest, MonolithWithTheSameBudgetReachesTheSameAccuracy) {
  const std::string json = absl::StrCat(::testing::TempDir(), "/mono_summary.json");
  const CommandResult run =
      Shell(absl::StrCat(kBin, "/hips train --monolith --epochs=2 --summary_json=", json));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << run.output;
  EXPECT_EQ(s["version"], 469);
  EXPECT_EQ(s["samples"], 469 * 4 * 64);
  EXPECT_GE(s["accuracy"].get<double>(), 0.80) << run.output;
  EXPECT_FALSE(s.contains("gradients"));  // no cluster, no accounting
}

// The user's own TorchScript module (docs/models.md): the zoo's mlp saved
// from Python trains in a cluster of the real daemons as the zoo's does.
TEST(LocalClusterTest, TrainsAUsersTorchScriptModule) {
  const std::string dir = NewRunDir("torchscript");
  const std::string json = absl::StrCat(dir, "/summary.json");
  std::remove(json.c_str());
  const CommandResult run =
      Shell(absl::StrCat(kBin, "/hips local --model=torchscript --model_file=", HIPS_TEST_MODULES,
                         "/mlp.pt --max_versions=200 --summary_json=", json, " --run_dir=", dir));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << run.output;
  EXPECT_EQ(s["version"], 200);
  EXPECT_EQ(s["gradients"]["applied"], 200 * 4);
  ExpectGradientsAccountedFor(s);
  // Its layout is the zoo's mlp: 269,322 floats a gradient.
  EXPECT_EQ(s["bytes"]["worker_to_aggregator"], int64_t{200} * 4 * 269322 * 4);
  EXPECT_GE(s["accuracy"].get<double>(), 0.80) << run.output;
}

// examples/ (docs/models.md), run as a user runs them: Fashion-MNIST written
// as .npz, a CNN with BatchNorm and Dropout saved from Python, trained by
// hips local and exported; the exported module, evaluated in Python, gives
// HQ's final accuracy, and its BatchNorm statistics are the trained ones
// (reset to a fresh layer's, the accuracy falls).
TEST(ExamplesTest, CnnWithBatchNormOnNpzTrainsAndExportsWhatHqEvaluated) {
  const std::string dir = NewRunDir("cnn_example");
  const std::string examples = absl::StrCat(HIPS_SOURCE_DIR, "/examples");
  const std::string python = "/usr/bin/python3 " + examples;
  CommandResult step = Shell(absl::StrCat(python, "/fashion_mnist_npz.py ", dir, "/data"));
  ASSERT_EQ(step.exit_code, 0) << step.output;
  step = Shell(absl::StrCat(python, "/cnn_batchnorm.py ", dir, "/cnn.pt"));
  ASSERT_EQ(step.exit_code, 0) << step.output;
  const std::string json = absl::StrCat(dir, "/summary.json");
  const std::string trained = absl::StrCat(dir, "/trained.pt");
  std::remove(json.c_str());
  std::remove(trained.c_str());
  const CommandResult run = Shell(
      absl::StrCat(kBin, "/hips local --model=torchscript --model_file=", dir,
                   "/cnn.pt --data=npz --train_data=", dir, "/data/train.npz --test_data=", dir,
                   "/data/test.npz --max_versions=60 --summary_json=", json, " --run_dir=", dir,
                   "/run --export=", trained));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << run.output;
  EXPECT_EQ(s["version"], 60);
  ExpectGradientsAccountedFor(s);
  const double accuracy = s["accuracy"].get<double>();
  EXPECT_GE(accuracy, 0.75) << run.output;

  const CommandResult eval =
      Shell(absl::StrCat(python, "/evaluate.py --json ", trained, " ", dir, "/data/test.npz"));
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  const nlohmann::json exported = nlohmann::json::parse(eval.output, nullptr, false);
  ASSERT_TRUE(exported.is_object()) << eval.output;
  EXPECT_EQ(exported["examples"], 10000);
  EXPECT_NEAR(exported["accuracy"].get<double>(), accuracy, 0.001) << eval.output;

  const CommandResult fresh = Shell(absl::StrCat(python, "/evaluate.py --json --fresh_statistics ",
                                                 trained, " ", dir, "/data/test.npz"));
  ASSERT_EQ(fresh.exit_code, 0) << fresh.output;
  const nlohmann::json untrained = nlohmann::json::parse(fresh.output, nullptr, false);
  ASSERT_TRUE(untrained.is_object()) << fresh.output;
  EXPECT_LT(untrained["accuracy"].get<double>(), accuracy - 0.05) << fresh.output;

  // The same run again (two aggregators, sync): dropout draws from (--seed,
  // worker, step), so it ends on the same weights, bit for bit.
  const CommandResult again = Shell(
      absl::StrCat(kBin, "/hips local --model=torchscript --model_file=", dir,
                   "/cnn.pt --data=npz --train_data=", dir, "/data/train.npz --test_data=", dir,
                   "/data/test.npz --max_versions=60 --run_dir=", dir, "/again"));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  const CommandResult same = Shell(absl::StrCat(
      "/usr/bin/python3 -c \"import glob, sys, torch\n"
      "def final(d): return torch.load(sorted(glob.glob(d + '/checkpoints/checkpoint-*.pt'))[-1])\n"
      "a, b = final(sys.argv[1]), final(sys.argv[2])\n"
      "assert a['version'] == b['version'] == 60, (a['version'], b['version'])\n"
      "print(sum(not torch.equal(a['weights'][k], b['weights'][k]) for k in a['weights']),"
      " 'of', len(a['weights']), 'tensors differ')\" ",
      dir, "/run ", dir, "/again"));
  ASSERT_EQ(same.exit_code, 0) << same.output;
  EXPECT_TRUE(std::regex_search(same.output, std::regex("^0 of [0-9]+ tensors differ")))
      << same.output;

  // The exported module holds another model than mlp.pt: hips export says so.
  const CommandResult wrong = Shell(absl::StrCat(
      kBin, "/hips export --checkpoint=", dir, "/run/checkpoints --model_file=", HIPS_TEST_MODULES,
      "/mlp.pt --out=", dir, "/wrong.pt"));
  EXPECT_EQ(wrong.exit_code, 2) << wrong.output;
  EXPECT_NE(wrong.output.find("is another model than the checkpoint's: tensor 0: "
                              "'0.weight'[32,1,3,3] in the checkpoint, '1.weight'[256,784] in "
                              "the file"),
            std::string::npos)
      << wrong.output;
}

// examples/regression.py: --loss=mse trains a regression; HQ reports RMSE
// and R², and the exported module gives the same in Python.
TEST(ExamplesTest, RegressionWithMseReportsRmseAndR2) {
  const std::string dir = NewRunDir("regression_example");
  const std::string python = absl::StrCat("/usr/bin/python3 ", HIPS_SOURCE_DIR, "/examples");
  CommandResult step = Shell(absl::StrCat(python, "/regression.py ", dir));
  ASSERT_EQ(step.exit_code, 0) << step.output;
  const std::string json = absl::StrCat(dir, "/summary.json");
  const std::string trained = absl::StrCat(dir, "/trained.pt");
  std::remove(json.c_str());
  const CommandResult run =
      Shell(absl::StrCat(kBin, "/hips local --loss=mse --model=torchscript --model_file=", dir,
                         "/model.pt --data=npz --train_data=", dir, "/train.npz --test_data=", dir,
                         "/test.npz --max_versions=200 --summary_json=", json, " --run_dir=", dir,
                         "/run --export=", trained));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("final: version=200 rmse="), std::string::npos) << run.output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << run.output;
  EXPECT_FALSE(s.contains("accuracy"));
  ExpectGradientsAccountedFor(s);
  const double r2 = s["r2"].get<double>();
  EXPECT_GE(r2, 0.9) << run.output;
  EXPECT_GT(s["rmse"].get<double>(), 0);

  const CommandResult eval =
      Shell(absl::StrCat(python, "/evaluate.py --json ", trained, " ", dir, "/test.npz"));
  ASSERT_EQ(eval.exit_code, 0) << eval.output;
  const nlohmann::json exported = nlohmann::json::parse(eval.output, nullptr, false);
  ASSERT_TRUE(exported.is_object()) << eval.output;
  EXPECT_NEAR(exported["r2"].get<double>(), r2, 0.001) << eval.output;
  EXPECT_NEAR(exported["rmse"].get<double>(), s["rmse"].get<double>(), 0.001) << eval.output;
}

// The issues' acceptance runs: the default budget (10 epochs) in async and
// in ssp with staleness 2, each to at least 0.87 test accuracy; the default
// (sync) run over mutual TLS and fedavg with its defaults (20 local steps,
// server momentum 0.5) and 2 edge rounds, its weights sent downstream as
// bf16 deltas, to at least 0.88.
class LocalModeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(LocalModeTest, ReachesTheTargetAccuracyWithTheDefaults) {
  const std::string dir = NewRunDir("local");
  const std::string json = absl::StrCat(dir, "/mode_summary.json");
  std::remove(json.c_str());
  const CommandResult run =
      Shell(absl::StrCat(kBin, "/hips local ", GetParam(),
                         " --progress_seconds=10 --summary_json=", json, " --run_dir=", dir));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << run.output;
  EXPECT_GE(s["accuracy"].get<double>(), 0.87) << run.output;
  EXPECT_GE(s["samples"].get<int64_t>(), 600000);
  ExpectGradientsAccountedFor(s);
  if (GetParam().find("fedavg") != std::string::npos) {
    EXPECT_EQ(s["mode"], "fedavg(H=20,E=2)") << run.output;
    EXPECT_GE(s["accuracy"].get<double>(), 0.88) << run.output;
    // A delta stands for 20 batches, an aggregate for 2 edge rounds of
    // them; the first round's deltas were applied at the edge; no round is
    // stale.
    EXPECT_GE(s["gradients"]["applied"].get<int64_t>(), 600000 / (64 * 20 * 2));
    EXPECT_EQ(s["max_staleness"].get<int64_t>(), 0);
    for (const nlohmann::json& a : s["aggregators"]) {
      EXPECT_EQ(a["gradients_edge_applied"].get<int64_t>(), a["gradients_forwarded"].get<int64_t>())
          << a.dump();
    }
    // The weights went to the aggregators as bf16 deltas (docs/wan.md).
    const std::string hq_log = ReadFile(absl::StrCat(dir, "/hq.log"));
    EXPECT_NE(hq_log.find("compressed deltas"), std::string::npos) << hq_log.substr(0, 2000);
    EXPECT_EQ(hq_log.find(": 0 compressed deltas"), std::string::npos) << hq_log.substr(0, 2000);
    return;
  }
  EXPECT_GE(s["gradients"]["applied"].get<int64_t>(), 600000 / 64);
  if (GetParam().find("ssp") != std::string::npos) {
    EXPECT_EQ(s["mode"], "ssp(2)") << run.output;
    EXPECT_LE(s["max_staleness"].get<int64_t>(), 2);
  } else if (GetParam().find("async") != std::string::npos) {
    EXPECT_EQ(s["mode"], "async") << run.output;
  } else {
    // The default run over mutual TLS (issue 14's acceptance run).
    EXPECT_EQ(s["mode"], "sync") << run.output;
    EXPECT_GE(s["accuracy"].get<double>(), 0.88) << run.output;
    EXPECT_NE(run.output.find("mutual TLS"), std::string::npos) << run.output;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Modes, LocalModeTest,
    ::testing::Values("--mode=async", "--mode ssp --staleness 2", "--tls",
                      "--mode=fedavg --edge_rounds=2 --weights_compression=bf16"),
    [](const auto& info) {
      return info.param.find("ssp") != std::string::npos      ? "ssp2"
             : info.param.find("async") != std::string::npos  ? "async"
             : info.param.find("fedavg") != std::string::npos ? "fedavg"
                                                              : "sync_tls";
    });

// hips mode and hips status against a running hips local, which hands them
// its credentials through the run directory: its tokens, and with --tls its
// CA and the CLI's certificate.
class HipsModeTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HipsModeTest, SwitchesARunningCluster) {
  const std::string dir = NewRunDir("switch");
  ASSERT_EQ(Shell(absl::StrCat("mkdir -p ", dir)).exit_code, 0);
  const std::string json = absl::StrCat(dir, "/summary.json");
  FILE* run = popen(absl::StrCat(kBin, "/hips local --epochs=3 --progress_seconds=0.5 ", GetParam(),
                                 " --summary_json=", json, " --run_dir=", dir, " 2>&1")
                        .c_str(),
                    "r");
  ASSERT_NE(run, nullptr);
  std::string output, hq;
  char line[4096];
  const std::regex up("cluster up: hq ([0-9.:]+),");
  // Switch to async once training runs, then to ssp(2) once async shows.
  int switches = 0;
  std::smatch m;
  while (fgets(line, sizeof(line), run) != nullptr) {
    const std::string text = line;
    output += text;
    if (std::regex_search(text, m, up)) hq = m[1].str();
    if (switches == 0 && text.find(" sync loss=") != std::string::npos && !hq.empty()) {
      const CommandResult r =
          Shell(absl::StrCat(kBin, "/hips mode async --hq=", hq, " --run_dir=", dir));
      EXPECT_EQ(r.exit_code, 0) << r.output;
      EXPECT_TRUE(
          std::regex_search(r.output, std::regex("mode async from version [0-9]+ \\(was sync\\)")))
          << r.output;
      ++switches;
      // Without the run's credentials, neither gets in.
      const CommandResult stranger =
          Shell(absl::StrCat(kBin, "/hips mode async --insecure --hq=", hq));
      EXPECT_NE(stranger.exit_code, 0) << stranger.output;
      const std::string tree_json = absl::StrCat(dir, "/status.json");
      const CommandResult status = Shell(
          absl::StrCat(kBin, "/hips status --json --hq=", hq, " --run_dir=", dir, " >", tree_json));
      EXPECT_EQ(status.exit_code, 0) << status.output;
      const nlohmann::json tree = ReadSummary(tree_json);
      ASSERT_TRUE(tree.is_object()) << status.output;
      EXPECT_EQ(tree["hq"]["live_aggregators"], 2) << status.output;
      EXPECT_EQ(tree["aggregators"].size(), 2u) << status.output;
      for (const nlohmann::json& a : tree["aggregators"]) {
        EXPECT_TRUE(a["reachable"].get<bool>()) << status.output;
      }
    } else if (switches == 1 && text.find(" async loss=") != std::string::npos) {
      const CommandResult r =
          Shell(absl::StrCat(kBin, "/hips mode ssp --staleness=2 --hq=", hq, " --run_dir=", dir));
      EXPECT_EQ(r.exit_code, 0) << r.output;
      ++switches;
    }
  }
  const int status = pclose(run);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << output;
  EXPECT_EQ(switches, 2) << output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << output;
  EXPECT_EQ(s["mode"], "ssp(2)") << output;
  EXPECT_GE(s["accuracy"].get<double>(), 0.8) << output;
  ExpectGradientsAccountedFor(s);
  // HQ logged the version of each switch.
  const std::string hq_log = ReadFile(absl::StrCat(dir, "/hq.log"));
  EXPECT_TRUE(
      std::regex_search(hq_log, std::regex("mode switched from sync to async at version [0-9]+")))
      << hq_log.substr(0, 2000);
  EXPECT_TRUE(std::regex_search(
      hq_log, std::regex("mode switched from async to ssp\\(2\\) at version [0-9]+")));
}

INSTANTIATE_TEST_SUITE_P(Security, HipsModeTest, ::testing::Values("", "--tls"),
                         [](const auto& info) {
                           return info.param.empty() ? "tokens" : "mutual_tls";
                         });

// Reads /proc/<pid>/cmdline with the NULs turned into spaces.
std::string CommandLineOf(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/cmdline"));
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (char& c : s) {
    if (c == '\0') c = ' ';
  }
  return s;
}

// Reads `fd` into `*out` until `needle` appears in it (an empty needle:
// until the writer closes its end), waiting on poll() no longer than
// `timeout` in all. True when it got there.
bool ReadUntil(int fd, const std::string& needle, std::chrono::seconds timeout, std::string* out) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (needle.empty() || out->find(needle) == std::string::npos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char buffer[4096];
    const ssize_t n = read(fd, buffer, sizeof(buffer));
    if (n <= 0) return needle.empty();  // the writer is gone
    out->append(buffer, static_cast<size_t>(n));
  }
  return true;
}

// SIGTERM (docker stop, kubectl delete, hips local's shutdown) stops a
// daemon cleanly: it says goodbye (HQ after its last checkpoint) and exits 0. LibTorch and
// OpenBLAS start threads as they load, before main() blocks the signal: a
// SIGTERM the kernel handed to one of them used to end the process on the
// spot (exit by signal 15, no checkpoint).
TEST(CommandLineTest, SigtermStopsTheDaemonsCleanly) {
  const std::string dir = NewRunDir("sigterm");
  struct Daemon {
    std::string name;
    std::vector<std::string> args;
  };
  const std::vector<Daemon> daemons = {
      {"hips-hq",
       {"--insecure", "--aggregators=1", "--eval_every=0",
        absl::StrCat("--checkpoint_dir=", dir, "/checkpoints")}},
      {"hips-aggregator", {"--insecure", "--hq=127.0.0.1:1", "--workers=1"}},
  };
  std::map<std::string, std::string> outputs;
  for (const Daemon& d : daemons) {
    SCOPED_TRACE(d.name);
    std::vector<std::string> argv = {kBin + "/" + d.name};
    argv.insert(argv.end(), d.args.begin(), d.args.end());
    int out[2];
    ASSERT_EQ(pipe(out), 0);
    const pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      dup2(out[1], STDOUT_FILENO);
      dup2(out[1], STDERR_FILENO);
      close(out[0]);
      std::vector<char*> c_argv;
      for (std::string& a : argv) c_argv.push_back(a.data());
      c_argv.push_back(nullptr);
      execv(c_argv[0], c_argv.data());
      _exit(127);
    }
    close(out[1]);
    std::string& output = outputs[d.name];
    // Listening once it says so (bounded: 60 s); then, after SIGTERM, gone
    // once its end of the pipe closes (bounded: 30 s).
    const bool listening = ReadUntil(out[0], " listening on ", std::chrono::seconds(60), &output);
    const bool closed = listening && kill(pid, SIGTERM) == 0 &&
                        ReadUntil(out[0], "", std::chrono::seconds(30), &output);
    close(out[0]);
    int status = 0;
    if (!closed) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      FAIL() << (listening ? "still running 30 s after SIGTERM: " : "not listening: ") << output;
    }
    // Its end of the pipe closed as it exited.
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status)) << "ended by signal " << WTERMSIG(status) << ": " << output;
    if (WIFEXITED(status)) {
      EXPECT_EQ(WEXITSTATUS(status), 0) << output;
    }
  }
  // Each got as far as its goodbye.
  EXPECT_NE(outputs["hips-hq"].find("stopping at version 0"), std::string::npos);
  EXPECT_NE(outputs["hips-aggregator"].find("stopping"), std::string::npos);
}

TEST(LocalClusterTest, WithoutSupervisionAChildThatDiesFailsTheRun) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const std::string hips = kBin + "/hips";
  const std::string run_dir = absl::StrCat("--run_dir=", NewRunDir("unsupervised"));
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    close(out[0]);
    execl(hips.c_str(), hips.c_str(), "local", "--epochs=50", "--progress_seconds=1",
          "--supervise=false", run_dir.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  FILE* from_hips = fdopen(out[0], "r");
  std::string output;
  char line[4096];
  // If an assertion below fails, hips and (through PR_SET_PDEATHSIG) its
  // children must not outlive the test.
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid > 0 && kill(pid, SIGTERM) == 0) waitpid(pid, nullptr, 0);
    }
  } reaper{pid};
  // Blocks on the pipe until a round was applied: every worker has exec'd.
  const std::regex progress("version=[1-9][0-9]* ");
  bool training = false;
  while (!training && fgets(line, sizeof(line), from_hips) != nullptr) {
    output += line;
    training = std::regex_search(line, progress);
  }
  ASSERT_TRUE(training) << output;

  // hips forks its children from its main thread.
  std::ifstream children_file(absl::StrCat("/proc/", pid, "/task/", pid, "/children"));
  pid_t victim = 0;
  for (pid_t child; children_file >> child;) {
    const std::string cmd = CommandLineOf(child);
    if (cmd.find("hips-worker") != std::string::npos &&
        cmd.find("--index=1 ") != std::string::npos) {
      victim = child;
    }
  }
  ASSERT_NE(victim, 0) << "no worker-1 among the children of " << pid;
  ASSERT_EQ(kill(victim, SIGKILL), 0);

  while (fgets(line, sizeof(line), from_hips) != nullptr) output += line;
  fclose(from_hips);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  reaper.pid = 0;  // reaped: nothing left to stop
  ASSERT_TRUE(WIFEXITED(status)) << output;
  EXPECT_EQ(WEXITSTATUS(status), 1) << output;
  EXPECT_NE(output.find(absl::StrCat("worker-1 (pid ", victim, ") died: signal Killed")),
            std::string::npos)
      << output;
  EXPECT_EQ(output.find("final:"), std::string::npos) << output;
}

TEST(CommandLineTest, AnEarlierRunsCheckpointsAreContinuedOnlyWhenAsked) {
  const std::string dir = NewRunDir("earlier");
  std::filesystem::create_directories(absl::StrCat(dir, "/checkpoints"));
  std::ofstream(absl::StrCat(dir, "/checkpoints/checkpoint-000000000042.pt")) << "x";
  const CommandResult run = Shell(absl::StrCat(kBin, "/hips local --epochs=1 --run_dir=", dir));
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("holds checkpoints of an earlier run: pass --resume"),
            std::string::npos)
      << run.output;
}

// Compressed gradient hops (docs/performance.md): the payload bytes of each
// hop are exactly what the encoding says, every gradient is accounted for,
// and the model still learns. Top-k also runs the tiers over Unix sockets.
struct CompressionCase {
  std::string flags;
  double bytes_per_gradient;  // for the 269,322-float mlp
};

class CompressedHopsTest : public ::testing::TestWithParam<CompressionCase> {};

TEST_P(CompressedHopsTest, CarryTheBytesTheirEncodingSaysAndStillTrain) {
  const std::string dir = NewRunDir("compressed");
  const std::string json = absl::StrCat(dir, "/summary.json");
  const CommandResult run =
      Shell(absl::StrCat(kBin, "/hips local --max_versions=100 ", GetParam().flags,
                         " --summary_json=", json, " --run_dir=", dir));
  ASSERT_EQ(run.exit_code, 0) << run.output;
  const nlohmann::json s = ReadSummary(json);
  ASSERT_TRUE(s.is_object()) << run.output;
  EXPECT_EQ(s["version"], 100);
  EXPECT_EQ(s["gradients"]["received"], 100 * 4);
  EXPECT_EQ(s["gradients"]["applied"], 100 * 4);
  ExpectGradientsAccountedFor(s);
  EXPECT_EQ(s["bytes"]["worker_to_aggregator"].get<double>(),
            100 * 4 * GetParam().bytes_per_gradient);
  EXPECT_EQ(s["bytes"]["aggregator_to_hq"].get<double>(), 100 * 2 * GetParam().bytes_per_gradient);
  EXPECT_GE(s["accuracy"].get<double>(), 0.6) << run.output;
}

INSTANTIATE_TEST_SUITE_P(
    Encodings, CompressedHopsTest,
    ::testing::Values(
        // ceil(1% of 269,322) = 2,694 entries of 8 bytes.
        CompressionCase{"--compression=topk --topk_ratio=0.01 --unix_sockets", 2694.0 * 8},
        CompressionCase{"--compression=fp16", 269322.0 * 2},
        CompressionCase{"--compression=bf16", 269322.0 * 2}),
    [](const ::testing::TestParamInfo<CompressionCase>& info) {
      return std::string(info.param.flags.find("topk") != std::string::npos   ? "topk"
                         : info.param.flags.find("fp16") != std::string::npos ? "fp16"
                                                                              : "bf16");
    });

TEST(CommandLineTest, BadFlagsExitNonZeroWithAMessage) {
  struct Bad {
    std::string command;
    std::string message;
    int exit_code = 2;
  };
  const Bad cases[] = {
      {"/hips local --workers=0", "--workers"},
      {"/hips local --no_such_flag", "unknown flag --no_such_flag"},
      // The flag parser's errors exit 2 like every other usage error.
      {"/hips-hq --lr=abc", "--lr=abc"},
      {"/hips-aggregator --hq=127.0.0.1:1 --workers", "--workers needs a value"},
      {"/hips-worker --aggregator=127.0.0.1:1 --nobatch_size", "unknown flag --nobatch_size"},
      {"/hips-hq --insecure extra", "unexpected argument extra"},
      {"/hips-hq --flagfile=/nonexistent/hq.flags",
       "--flagfile: cannot read /nonexistent/hq.flags"},
      {"/hips frobnicate",
       "unknown subcommand 'frobnicate'; the subcommands are local, train, export, mode, health, "
       "status, token"},
      {"/hips", "no subcommand"},
      {"/hips status extra --hq=127.0.0.1:1", "unexpected argument 'extra'"},
      {"/hips mode --hq=127.0.0.1:1", "one mode"},
      {"/hips train", "--monolith"},
      {"/hips train --monolith --model=nope --max_versions=1", "unknown model"},
      {"/hips train --monolith --model=torchscript --max_versions=1",
       "--model=torchscript needs --model_file"},
      {"/hips train --monolith --model_file=m.pt --max_versions=1",
       "--model_file is for --model=torchscript"},
      {"/hips train --monolith --model=torchscript --model_file=/nonexistent/m.pt "
       "--max_versions=1",
       "/nonexistent/m.pt: not a TorchScript module"},
      {"/hips-hq --insecure --model=torchscript --model_file=/nonexistent/m.pt",
       "/nonexistent/m.pt: not a TorchScript module"},
      {"/hips-hq --aggregators=0", "at least 1 aggregator"},
      {"/hips-hq --optimizer=rmsprop", "unknown optimizer"},
      {"/hips-aggregator --workers=2", "HQ address"},
      {"/hips-worker --index=0", "--aggregator"},
      {"/hips-worker --aggregator=127.0.0.1:1 --index=5 --workers=2", "worker index"},
      {"/hips-worker --aggregator=127.0.0.1:1 --health_port=-5", "--health_port"},
      {"/hips-worker --aggregator=127.0.0.1:1 --health_port=70000", "--health_port"},
      {"/hips-aggregator --hq=127.0.0.1:1 --advertise_address=nohostport", "--advertise_address"},
      {"/hips-aggregator --hq=127.0.0.1:1 --advertise_address=host:", "--advertise_address"},
      {"/hips health", "one address"},
      {"/hips health 127.0.0.1:1 127.0.0.1:2", "one address"},
      {"/hips health 127.0.0.1:1 --timeout_ms=0", "--timeout_ms"},
      {"/hips health 127.0.0.1:1 --tls_ca=/nonexistent/ca.pem", "/nonexistent/ca.pem"},
      {"/hips local --mode=eventual", "unknown mode"},
      {"/hips local --mode=ssp --staleness=-1", "staleness"},
      {"/hips local --slow_workers=7", "--slow_workers"},
      {"/hips local --staleness_lr=cube", "staleness scaling"},
      {"/hips mode async", "--hq"},
      {"/hips mode sometimes --hq=127.0.0.1:1", "unknown mode"},
      {"/hips-hq --mode=ssp --staleness=-2", "staleness"},
      // fedavg (docs/modes.md).
      {"/hips-hq --mode=fedavg --local_steps=0", "local steps must be in [1, 100000]"},
      {"/hips-hq --mode=fedavg --local_steps=100001", "local steps must be in [1, 100000]"},
      {"/hips-hq --mode=fedavg --participation=0", "participation must be in (0, 1]"},
      {"/hips-hq --mode=fedavg --participation=1.5", "participation must be in (0, 1]"},
      {"/hips-hq --mode=fedavg --participation=nan", "participation must be in (0, 1]"},
      {"/hips-hq --mode=fedavg --edge_rounds=0", "edge rounds must be in [1, 1000]"},
      {"/hips-hq --mode=fedavg --edge_rounds=1001", "edge rounds must be in [1, 1000]"},
      {"/hips-hq --mode=fedavg --edge_rounds=two", "edge_rounds"},
      {"/hips local --mode=fedavg --edge_rounds=-1", "edge rounds must be in [1, 1000]"},
      {"/hips mode fedavg --edge_rounds=0 --hq=127.0.0.1:1", "edge rounds must be in [1, 1000]"},
      {"/hips local --partition=dirichlet --dirichlet_draw=per_site",
       "--dirichlet_draw must be per_class or per_home"},
      {"/hips-worker --aggregator=127.0.0.1:1 --partition=dirichlet --dirichlet_draw=home",
       "--dirichlet_draw must be per_class or per_home"},
      // FedProx and HQ's buffer across MDCs (docs/noniid.md).
      {"/hips-hq --mode=fedavg --proximal_mu=-0.1", "proximal mu must be in [0, 1000]"},
      {"/hips-hq --mode=fedavg --proximal_mu=nan", "proximal mu must be in [0, 1000]"},
      {"/hips-hq --mode=fedavg --proximal_mu=1e4", "proximal mu must be in [0, 1000]"},
      {"/hips local --mode=fedavg --proximal_mu=inf", "proximal mu must be in [0, 1000]"},
      // SCAFFOLD: fedavg only, by name.
      {"/hips-hq --mode=fedavg --fedavg_algorithm=scafold",
       "--fedavg_algorithm: unknown algorithm 'scafold' (fedavg or scaffold)"},
      {"/hips local --mode=fedavg --fedavg_algorithm=", "--fedavg_algorithm: unknown algorithm"},
      {"/hips-hq --fedavg_algorithm=scaffold", "--fedavg_algorithm=scaffold trains in fedavg only"},
      {"/hips local --mode=ssp --fedavg_algorithm=scaffold",
       "--fedavg_algorithm=scaffold trains in fedavg only"},
      {"/hips-hq --hq_buffer=-1", "HQ buffer must be in [0, 4096]"},
      {"/hips-hq --mode=fedavg --hq_buffer=4097", "HQ buffer must be in [0, 4096]"},
      {"/hips-hq --hq_buffer=two", "hq_buffer"},
      {"/hips-hq --hq_buffer=2 --staleness_weighting=linear", "--staleness_weighting: unknown"},
      {"/hips-hq --hq_buffer=2 --staleness_weighting=polynomial --staleness_exponent=0",
       "staleness exponent must be in (0, 10]"},
      {"/hips-hq --hq_buffer=2 --staleness_weighting=polynomial --staleness_exponent=11",
       "staleness exponent must be in (0, 10]"},
      {"/hips local --mode=fedavg --hq_buffer=2 --staleness_weighting=polynomial "
       "--staleness_exponent=-1",
       "staleness exponent must be in (0, 10]"},
      {"/hips mode sync --hq_buffer=-3 --hq=127.0.0.1:1", "HQ buffer must be in [0, 4096]"},
      {"/hips-hq --server_lr=0", "--server_lr must be in (0, 1000]"},
      {"/hips-hq --server_momentum=1", "--server_momentum must be in [0, 1)"},
      {"/hips-hq --insecure --mode=fedavg --optimizer=adam", "fedavg runs SGD on the workers"},
      {"/hips local --mode=fedavg --local_steps=-5", "local steps must be in [1, 100000]"},
      {"/hips local --mode=fedavg --optimizer=adam", "needs --optimizer=sgd"},
      {"/hips local --mode=fedavg --server_momentum=-0.5", "--server_momentum must be in [0, 1)"},
      {"/hips mode fedavg --participation=2 --hq=127.0.0.1:1", "participation must be in (0, 1]"},
      // HQ's weights downstream (docs/wan.md).
      {"/hips-hq --weights_compression=zstd", "--weights_compression: unknown compression"},
      {"/hips-hq --weights_compression=topk --weights_topk_ratio=0",
       "--weights_topk_ratio must be in (0, 1]"},
      {"/hips-hq --weights_compression=topk --weights_topk_ratio=1.5",
       "--weights_topk_ratio must be in (0, 1]"},
      {"/hips-hq --weights_compression=bf16 --weights_resync_every=0",
       "--weights_resync_every must be at least 1"},
      {"/hips local --weights_compression=bf16 --weights_resync_every=-3",
       "--weights_resync_every must be at least 1"},
      {"/hips-hq --aggregators=2 --quorum=3", "quorum"},
      {"/hips-aggregator --hq=127.0.0.1:1 --workers=2 --quorum=3", "quorum"},
      {"/hips-worker --aggregator=127.0.0.1:1 --slowdown=0.5", "slowdown"},
      {"/hips local --compression=zip", "unknown compression"},
      // Divergence (docs/faults.md).
      {"/hips local --on_divergence=ignore", "--on_divergence=ignore: expected stop or rollback"},
      {"/hips-hq --on_divergence=", "--on_divergence=: expected stop or rollback"},
      {"/hips-hq --divergence_lr_factor=1", "--divergence_lr_factor must be in (0, 1)"},
      {"/hips-hq --divergence_lr_factor=0", "--divergence_lr_factor must be in (0, 1)"},
      {"/hips local --divergence_lr_factor=nan", "--divergence_lr_factor must be in (0, 1)"},
      {"/hips-hq --max_rollbacks=-1", "--max_rollbacks must be in [0, 1000]"},
      {"/hips local --max_rollbacks=1001", "--max_rollbacks must be in [0, 1000]"},
      {"/hips-hq --max_rollbacks=many", "--max_rollbacks"},
      // A child that cannot start fails the run at once, not after restarts.
      // (A run that failed, not a usage error of hips local's own: 1.)
      {"/hips local --data_dir=/nonexistent --max_versions=5", "hq could not start (exit code 1)",
       1},
      {"/hips-worker --aggregator=127.0.0.1:1 --compression=topk --topk_ratio=2", "top-k ratio"},
      {"/hips-aggregator --hq=127.0.0.1:1 --compression=fp8", "unknown compression"},
      {"/hips-aggregator --hq=127.0.0.1:1 --insecure --unix_socket=/tmp/" + std::string(200, 'x'),
       "Unix socket path"},
      // Security (docs/security.md): nothing listens open by mistake.
      {"/hips-hq --host=0.0.0.0", "without TLS"},
      {"/hips-hq", "no credentials"},
      {"/hips-aggregator --hq=127.0.0.1:1", "no credentials"},
      {"/hips-hq --token_file=/nonexistent", "cannot read the token file /nonexistent"},
      // Member tokens, and plaintext to another machine.
      {"/hips-hq --insecure --member_key_file=/nonexistent/k.pub",
       "cannot read the member key /nonexistent/k.pub"},
      {"/hips-hq --insecure --member_key_file=/etc/hostname", "is not a public member key"},
      {"/hips-worker --insecure --aggregator=127.0.0.1:1 --member_token_file=/etc/hostname",
       "may be read by other users"},
      {"/hips-aggregator --hq=10.0.0.1:7000", "refusing to dial --hq=10.0.0.1:7000 without TLS"},
      {"/hips-worker --aggregator=10.0.0.1:7001", "refusing to dial --aggregator=10.0.0.1:7001"},
      {"/hips token --role=worker", "hips token needs --member=ID"},
      {"/hips token --member=w --role=boss", "--role: a member role is worker or aggregator"},
      {"/hips token --member=w --role=worker", "needs the secret member key"},
      {"/hips token --member=w --role=worker --key_file=/nonexistent/k",
       "cannot read the token file /nonexistent/k"},
      {"/hips token --new_key_file=/tmp/k --member=w", "--new_key_file makes a key only"},
      {"/hips-hq --token_file=/etc/hostname", "may be read by other users"},
      {"/hips-hq --tls_cert=/etc/hostname", "--tls_cert and --tls_key go together"},
      {"/hips-hq --tls_ca=/nonexistent.pem", "cannot read the CA certificate"},
      {"/hips-worker --aggregator=127.0.0.1:1 --tls_cert=/etc/hostname --tls_key=/etc/hostname",
       "needs --tls_ca"},
      {"/hips status --hq=127.0.0.1:1", "no token"},
      {"/hips mode async --hq=127.0.0.1:1", "no admin token"},
      {"/hips mode async --hq=127.0.0.1:1 --run_dir=/nonexistent", "cannot read the token file"},
      // Limits and ids.
      {"/hips-hq --max_streams=-1", "--max_streams must be >= 0"},
      {"/hips-hq --max_streams_per_member=-1", "--max_streams_per_member must be in [0, 1000]"},
      {"/hips local --clip_norm=-1", "--clip_norm must be auto, auto:K, off, or a bound >= 0"},
      {"/hips-aggregator --hq=127.0.0.1:1 --clip_norm=auto:0",
       "--clip_norm=auto:K takes a multiple K in (0, 100], got \"0\""},
      {"/hips-aggregator --hq=127.0.0.1:1 --clip_norm=nan", "--clip_norm must be auto"},
      {"/hips-hq --insecure --clip_norm=bad", "--clip_norm must be auto, auto:K, off"},
      {"/hips-hq --insecure --clip_norm=auto:101", "--clip_norm=auto:K takes a multiple K"},
      {"/hips local --partition=noniid", "--partition must be iid, dirichlet or shards"},
      {"/hips local --partition=dirichlet --dirichlet_alpha=0",
       "--dirichlet_alpha must be in (0, 1000], got 0"},
      {"/hips local --partition=shards --shards_per_home=0",
       "--shards_per_home must be in [1, 1000], got 0"},
      {"/hips local --partition=dirichlet --dirichlet_alpha=0.001 --workers=64 --aggregators=4",
       "homes fewer than 64 examples (a batch)"},
      // Many homes per process (docs/modes.md, "Many homes").
      {"/hips-worker --aggregator=127.0.0.1:1 --homes=0", "--homes must be in [1, 16384], got 0"},
      {"/hips-worker --aggregator=127.0.0.1:1 --homes=16385 --workers=20000",
       "--homes must be in [1, 16384], got 16385"},
      {"/hips-worker --aggregator=127.0.0.1:1 --homes=4 --first_home=2 --workers=5",
       "homes 2 to 5 are not all among the run's 5 (--first_home, --homes, --workers)"},
      {"/hips-worker --aggregator=127.0.0.1:1 --first_home=-3", "--first_home must be >= 0, got -3"},
      {"/hips-worker --aggregator=127.0.0.1:1 --homes=2 --workers=2 --id='w 0'",
       "[A-Za-z0-9._-]"},
      {"/hips local --homes=-1", "--homes must be in [0, 100000], got -1"},
      {"/hips local --homes=100001", "--homes must be in [0, 100000], got 100001"},
      {"/hips local --homes=3 --workers=5",
       "--homes=3 over --workers=5 processes: each must host 1 to 16384 homes"},
      {"/hips local --homes=40000 --workers=2 --aggregators=2",
       "--homes=40000 over --workers=2 processes: each must host 1 to 16384 homes"},
      {"/hips token --member='worker-[5..2]' --role=worker --key_file=/etc/hostname",
       "is not a range of homes PREFIX[FIRST..LAST]: FIRST is after LAST"},
      {"/hips-worker --aggregator=127.0.0.1:1 --partition=dirichlet --dirichlet_alpha=nan",
       "--dirichlet_alpha must be in (0, 1000]"},
      {"/hips train --monolith --partition=shards --shards_per_home=1001",
       "--shards_per_home must be in [1, 1000]"},
      {"/hips local --max_samples_per_push=lots",
       "--max_samples_per_push must be auto, auto:K, off, or a bound >= 0"},
      {"/hips-aggregator --hq=127.0.0.1:1 --max_samples_per_push=auto:-2",
       "--max_samples_per_push=auto:K takes a multiple K in (0, 100]"},
      {"/hips local --robust=mean", "--robust must be none, trimmed_mean or median, got \"mean\""},
      {"/hips-aggregator --hq=127.0.0.1:1 --robust=", "--robust must be none, trimmed_mean"},
      {"/hips local --trim_fraction=0.5", "--trim_fraction must be in [0, 0.5), got 0.5"},
      {"/hips-aggregator --hq=127.0.0.1:1 --robust=trimmed_mean --trim_fraction=-0.1",
       "--trim_fraction must be in [0, 0.5)"},
      {"/hips local --quarantine_ms=-5", "--quarantine_ms must be in [0, 86400000], got -5"},
      {"/hips-aggregator --hq=127.0.0.1:1 --quarantine_ms=86400001",
       "--quarantine_ms must be in [0, 86400000]"},
      {"/hips-aggregator --hq=127.0.0.1:1 --max_streams_per_member=1001",
       "--max_streams_per_member must be in [0, 1000], got 1001"},
      {"/hips-aggregator --hq=127.0.0.1:1 --stream_idle_ms=-5", "--stream_idle_ms must be >= 0"},
      {"/hips-aggregator --hq=127.0.0.1:1 --workers=2 --max_workers=1", "max workers"},
      {"/hips-hq --aggregators=2 --max_aggregators=1", "max aggregators"},
      {"/hips-hq --max_batch_samples=0", "max batch samples"},
      {"/hips-aggregator --hq=127.0.0.1:1 --max_batch_samples=-3", "max batch samples"},
      {"/hips-aggregator --hq=127.0.0.1:1 --id=agg/0", "[A-Za-z0-9._-]"},
      {"/hips-worker --aggregator=127.0.0.1:1 --id='w 0'", "[A-Za-z0-9._-]"},
      // Your own data and model (docs/models.md): refused before anything starts.
      {"/hips local --data=npz --train_data=/nonexistent.npz --test_data=" + Npz("small.npz"),
       "--train_data=/nonexistent.npz: No such file or directory"},
      {"/hips local --data=npz --train_data=" + Npz("y_int32.npz") +
           " --test_data=" + Npz("small.npz"),
       "y is '<i4', hips needs int64 ('<i8') class labels"},
      {"/hips-worker --aggregator=127.0.0.1:1 --insecure --data=npz --train_data=" +
           Npz("lengths_differ.npz") + " --test_data=" + Npz("small.npz"),
       "x has 10 examples, y has 9"},
      {"/hips-hq --insecure --data=npz --train_data=" + Npz("small.npz") +
           " --test_data=" + Npz("not_a_zip.npz"),
       "--test_data=" + Npz("not_a_zip.npz") + ": not a .npz file"},
      {"/hips local --data=npz --train_data=" + Npz("small.npz") +
           " --test_data=" + Npz("other_shape.npz"),
       "--train_data examples are [2, 3], --test_data examples [6]"},
      {"/hips local --data=npz --train_data=" + Npz("small.npz"), "--test_data=: no file given"},
      {"/hips local --train_data=" + Npz("small.npz"), "are for --data=npz"},
      // A module whose forward cannot take the data's examples.
      {"/hips-hq --insecure --data=npz --train_data=" + Npz("small.npz") + " --test_data=" +
           Npz("small.npz") + " --model=torchscript --model_file=" + HIPS_TEST_MODULES + "/mlp.pt",
       "its forward maps a batch of shape [1, 2, 3] to an error"},
      {"/hips local --loss=huber", "unknown loss 'huber'"},
      {"/hips local --loss=mse", "--loss=mse needs regression targets"},
      {"/hips local --loss=mse --data=npz --train_data=" + Npz("small.npz") +
           " --test_data=" + Npz("small.npz"),
       "y holds int64 class labels, --loss=mse needs float32 targets"},
      {"/hips local --data=npz --train_data=" + Npz("float_targets.npz") +
           " --test_data=" + Npz("float_targets.npz"),
       "y holds float32 targets, --loss=cross_entropy needs int64 class labels"},
      {"/hips local --export=/tmp/trained.pt", "--export writes the trained TorchScript module"},
      {"/hips export --model_file=m.pt --out=/tmp/trained.pt", "needs --checkpoint"},
      {"/hips export --checkpoint=/nonexistent --model_file=m.pt --out=/tmp/trained.pt",
       "--checkpoint /nonexistent: cannot read it"},
      {"/hips export --checkpoint=/etc/hostname --model_file=m.pt --out=/tmp/trained.pt",
       "--checkpoint /etc/hostname: "},
      // Addresses and ports.
      {"/hips-aggregator --hq=hq --insecure", "--hq=hq: no port"},
      {"/hips-aggregator --hq=hq:70000 --insecure", "--hq=hq:70000: the port must be in"},
      {"/hips-worker --aggregator=a:1,b --insecure", "--aggregator=b: no port"},
      {"/hips-hq --insecure --port=-3", "--port=-3"},
      {"/hips-hq --insecure --metrics_port=70000", "--metrics_port=70000"},
      {"/hips health hq", "hips health hq: no port"},
      // --check_flags: the checks of a start, nothing read or started.
      {"/hips-hq --check_flags --host=0.0.0.0 --token_file=/nonexistent/t", "without TLS"},
      {"/hips-hq --check_flags --token_file=/nonexistent/t", "no admin credentials"},
      {"/hips-hq --check_flags --insecure --optimizer=rmsprop", "unknown optimizer"},
      {"/hips-hq --check_flags --insecure --model=resnet", "unknown model"},
      {"/hips-hq --check_flags --insecure --data=npz --train_data=a.npz",
       "--test_data=: no file given"},
      {"/hips-hq --check_flags --insecure --checkpoint_dir=/c --checkpoint_keep=0",
       "checkpoints to keep"},
      {"/hips-hq --check_flags --insecure --eval_every=-1", "--eval_every"},
      {"/hips-aggregator --check_flags --hq=hq:7000 --tls_cert=/n/a.pem --tls_key=/n/a.key",
       "needs --tls_ca"},
      {"/hips-aggregator --check_flags --hq=hq:7000 --host=0.0.0.0 --insecure --workers=0",
       "at least 1 worker"},
      {"/hips-worker --check_flags --aggregator=a:1 --index=4 --workers=4", "worker index"},
      {"/hips-worker --check_flags --aggregator=a:1 --model=torchscript", "needs --model_file"},
      {"/hips health --check_flags a:1 --tls_cert=/n/c.pem --tls_key=/n/c.key", "needs --tls_ca"},
      {"/hips status --check_flags --hq=a:1", "--check_flags is for the daemons and hips health"},
      {"/hips-hq --check_flags=maybe", "check_flags"},
      {"/hips health a:1 --live=maybe", "live"},
      {"/hips-worker --aggregator=a:1 --aggregator_by_index=maybe", "aggregator_by_index"},
      {"/hips-worker --aggregator=a:1, --insecure", "--aggregator=: no port"},
  };
  for (const Bad& b : cases) {
    const CommandResult run = Shell(kBin + b.command);
    // 2 for a usage error, whoever finds it (the flag parser, a check, a
    // daemon that cannot start as configured); 1 for a run that failed.
    EXPECT_EQ(run.exit_code, b.exit_code) << b.command << "\n" << run.output;
    EXPECT_NE(run.output.find(b.message), std::string::npos) << b.command << "\n" << run.output;
  }
}

// --check_flags accepts a deployment's command lines where none of their
// files exist (they do where the manifests run), and reads none of them: the
// same lines without it fail on the first missing file.
TEST(CommandLineTest, CheckFlagsAcceptsADeploymentWithoutItsFiles) {
  const std::string tls =
      " --tls_cert=/nonexistent/m.pem --tls_key=/nonexistent/m.key"
      " --tls_ca=/nonexistent/ca.pem --token_file=/nonexistent/cluster.token";
  const std::string lines[] = {
      "/hips-hq --host=0.0.0.0 --port=7000 --aggregators=2 --max_versions=1500 "
      "--checkpoint_dir=/nonexistent/checkpoints --metrics_address=0.0.0.0 --metrics_port=9464 "
      "--admin_token_file=/nonexistent/admin.token --data=npz --train_data=/nonexistent/a.npz "
      "--test_data=/nonexistent/b.npz --model=torchscript --model_file=/nonexistent/m.pt" +
          tls,
      "/hips-aggregator --id=agg-1 --hq=hips-hq-0.hips-hq:7000 --host=0.0.0.0 --port=7001 "
      "--workers=2 --advertise_address=hips-aggregator-1.hips-aggregator:7001" +
          tls,
      "/hips-worker --index=3 --workers=4 --health_port=7002 "
      "--aggregator=hips-aggregator-1.hips-aggregator:7001,hips-aggregator-0.hips-aggregator:7001" +
          tls,
      "/hips health 127.0.0.1:7000 --tls_ca=/nonexistent/ca.pem --tls_cert=/nonexistent/c.pem "
      "--tls_key=/nonexistent/c.key",
  };
  for (const std::string& line : lines) {
    const CommandResult checked = Shell(kBin + line + " --check_flags");
    EXPECT_EQ(checked.exit_code, 0) << line << "\n" << checked.output;
    EXPECT_NE(checked.output.find(": flags ok"), std::string::npos) << checked.output;
    const CommandResult started = Shell(kBin + line);
    EXPECT_EQ(started.exit_code, 2) << line << "\n" << started.output;
    EXPECT_NE(started.output.find("/nonexistent/"), std::string::npos) << started.output;
  }
}

// --help exits 0 and shows the flags of what was asked about, and only
// those: the program's subcommands, a subcommand's own flags, a daemon's.
TEST(CommandLineTest, HelpShowsTheFlagsOfWhatWasAskedAbout) {
  struct Help {
    std::string command;
    std::vector<std::string> text;       // in the output
    std::vector<std::string> flags;      // listed
    std::vector<std::string> not_flags;  // not listed
  };
  const Help cases[] = {
      {"/hips --help",
       {"hips local", "hips train --monolith", "hips mode", "hips status", "SUBCOMMAND --help"},
       {},
       {"workers", "flagfile"}},
      {"/hips -h", {"hips local", "hips status"}, {}, {"workers"}},
      {"/hips local --help",
       {"usage: hips local", "--workers (default: 4)"},
       {"workers", "mode", "model", "lr", "compression", "summary_json", "resume"},
       {"json", "hq", "monolith", "flagfile", "helpfull"}},
      {"/hips --epochs=3 local --help", {"usage: hips local"}, {"aggregators"}, {"json"}},
      {"/hips train --help",
       {"usage: hips train --monolith"},
       {"monolith", "model", "lr"},
       {"aggregators", "json", "compression"}},
      {"/hips mode --help", {"usage: hips mode"}, {"hq", "staleness"}, {"workers", "lr"}},
      {"/hips status --help", {"usage: hips status"}, {"hq", "json"}, {"workers", "model"}},
      {"/hips-hq --help",
       {"usage: hips-hq"},
       {"aggregators", "checkpoint_dir", "model", "metrics_port"},
       {"flagfile", "json", "aggregator"}},
      {"/hips-aggregator --help",
       {"usage: hips-aggregator"},
       {"hq", "workers", "compression", "coalesce_ms"},
       {"flagfile", "model"}},
      {"/hips-worker --helpfull",
       {"usage: hips-worker"},
       {"aggregator", "index", "batch_size", "model"},
       {"flagfile", "checkpoint_dir"}},
  };
  for (const Help& h : cases) {
    const CommandResult run = Shell(kBin + h.command);
    EXPECT_EQ(run.exit_code, 0) << h.command << "\n" << run.output;
    for (const std::string& text : h.text) {
      EXPECT_NE(run.output.find(text), std::string::npos) << h.command << ": " << text << "\n"
                                                          << run.output;
    }
    for (const std::string& flag : h.flags) {
      EXPECT_NE(run.output.find(absl::StrCat("\n  --", flag, " (default: ")), std::string::npos)
          << h.command << ": --" << flag << "\n"
          << run.output;
    }
    for (const std::string& flag : h.not_flags) {
      EXPECT_EQ(run.output.find(absl::StrCat("\n  --", flag, " (default: ")), std::string::npos)
          << h.command << ": --" << flag << "\n"
          << run.output;
    }
  }
}

}  // namespace
}  // namespace hips
