// Faults on real processes on loopback (docs/faults.md): members killed with
// -9, paused with SIGSTOP, restarted; HQ restarted from its checkpoints, one
// of them damaged; and a chaos run of `hips local`. Lines starting with
// "measured:" are the costs docs/faults.md reports.

#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "services/testing/wait_for.h"
#include "tests/process_cluster.h"

namespace hips {
namespace {

const std::string kBin = HIPS_BIN_DIR;
constexpr int64_t kLeaseMs = 1000;
const absl::Duration kLease = absl::Milliseconds(kLeaseMs);

std::set<std::string> Live(const AggregatorStatus& s) {
  return {s.counters.live_workers.begin(), s.counters.live_workers.end()};
}

void ExpectHqAccounting(const HqStatus& status) {
  const ParameterServerStatus& s = status.server;
  EXPECT_EQ(s.gradients_received, s.gradients_applied + s.gradients_duplicate +
                                      SumCounts(s.gradients_dropped) + s.gradients_pending);
}

void ExpectAggregatorAccounting(const AggregatorStatus& status) {
  const AggregatorCounters& s = status.counters;
  EXPECT_EQ(s.gradients_received, s.gradients_duplicate + SumCounts(s.gradients_dropped) +
                                      s.gradients_forwarded + s.gradients_pending)
      << status.id;
}

class FaultsTest : public ::testing::Test {
 protected:
  ProcessClusterOptions Options(const std::string& name) {
    ProcessClusterOptions o;
    o.bin_dir = kBin;
    o.run_dir = NewRunDir(::testing::TempDir(), name);
    o.lease_ms = kLeaseMs;
    // Long enough to outlast the test, which stops the cluster itself.
    o.hq_args = {"--max_versions=100000", "--eval_every=0"};
    return o;
  }

  // Waits until HQ reached `version` (bounded). On failure the message
  // carries what a stall needs to be understood after the run directory is
  // gone (a CI machine): every tier's counters and its log's last lines.
  static void ReachVersion(ProcessCluster& c, int64_t version) {
    ASSERT_TRUE(WaitFor([&] { return c.Version() >= version; }, absl::Seconds(90)))
        << "HQ stuck at version " << c.Version() << "; see " << c.run_dir() << "\n"
        << Diagnose(c);
  }

  static std::string Diagnose(ProcessCluster& c) {
    std::ostringstream out;
    if (absl::StatusOr<HqStatus> s = c.QueryHq(); s.ok()) {
      const ParameterServerStatus& p = s->server;
      out << "hq: received " << p.gradients_received << " applied " << p.gradients_applied
          << " duplicate " << p.gradients_duplicate << " pending " << p.gradients_pending
          << " dropped " << SumCounts(p.gradients_dropped) << " live aggregators "
          << p.live_aggregators.size() << " live workers " << p.live_workers.size() << "\n";
    }
    for (int a = 0; a < 2; ++a) {
      if (absl::StatusOr<AggregatorStatus> s = c.QueryAggregator(a); s.ok()) {
        const AggregatorCounters& k = s->counters;
        out << s->id << ": version " << s->version << " received " << k.gradients_received
            << " forwarded " << k.gradients_forwarded << " pending " << k.gradients_pending
            << " dropped " << SumCounts(k.gradients_dropped) << " live workers " << k.live_workers.size()
            << "\n";
      }
    }
    for (const auto& entry : std::filesystem::directory_iterator(c.run_dir())) {
      if (entry.path().extension() != ".log") continue;
      std::ifstream in(entry.path());
      std::vector<std::string> lines;
      for (std::string line; std::getline(in, line);) lines.push_back(line);
      out << "--- last lines of " << entry.path().filename().string() << "\n";
      const size_t first = lines.size() > 12 ? lines.size() - 12 : 0;
      for (size_t i = first; i < lines.size(); ++i) out << lines[i] << "\n";
    }
    return out.str();
  }
};

TEST_F(FaultsTest, AKilledWorkerHoldsASyncRoundUpForAtMostALeaseAndRejoinsWhenRestarted) {
  ProcessCluster c(Options("worker-kill"));
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 20);
  c.Kill("worker-1");
  const absl::Time killed = absl::Now();
  const int64_t at_kill = c.Version();
  // The round worker-1 would have been part of closes without it, once its
  // lease expired.
  ReachVersion(c, at_kill + 2);
  const absl::Duration stall = absl::Now() - killed;
  std::printf("measured: worker kill -9 -> round closed after %.2f s (lease %.1f s)\n",
              absl::ToDoubleSeconds(stall), absl::ToDoubleSeconds(kLease));
  EXPECT_LE(stall, 2 * kLease);
  ReachVersion(c, at_kill + 20);  // training goes on with three workers
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<AggregatorStatus> s = c.QueryAggregator(1);
        return s.ok() && !Live(*s).count("worker-1");
      },
      3 * kLease));

  // Restarted under the same id, it rejoins and gets the current weights:
  // every round has all four workers again.
  ASSERT_TRUE(c.Restart("worker-1").ok());
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<AggregatorStatus> s = c.QueryAggregator(1);
        return s.ok() && Live(*s).count("worker-1");
      },
      absl::Seconds(30)));
  ReachVersion(c, c.Version() + 2);
  absl::StatusOr<HqStatus> before = c.QueryHq();
  ASSERT_TRUE(before.ok());
  ReachVersion(c, before->server.version + 20);
  absl::StatusOr<HqStatus> after = c.QueryHq();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->server.gradients_applied - before->server.gradients_applied,
            4 * (after->server.version - before->server.version));
  EXPECT_EQ(after->server.max_round_contributors, 4);
  EXPECT_EQ(after->server.staleness.max(), 0);
  ExpectHqAccounting(*after);
}

TEST_F(FaultsTest, WorkersOfAKilledAggregatorFailOverAndNoVersionCountsAWorkerTwice) {
  ProcessCluster c(Options("aggregator-kill"));
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 20);
  c.Kill("aggregator-0");
  const absl::Time killed = absl::Now();
  const int64_t at_kill = c.Version();
  // worker-0 and worker-2 belonged to aggregator-0.
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<AggregatorStatus> s = c.QueryAggregator(1);
        return s.ok() && Live(*s).count("worker-0") && Live(*s).count("worker-2");
      },
      absl::Seconds(10)));
  const absl::Duration failover = absl::Now() - killed;
  std::printf("measured: aggregator kill -9 -> its workers at the other aggregator after %.2f s\n",
              absl::ToDoubleSeconds(failover));
  EXPECT_LE(failover, 2 * kLease);
  ReachVersion(c, at_kill + 30);
  std::printf("measured: aggregator kill -9 -> 30 more versions after %.2f s\n",
              absl::ToDoubleSeconds(absl::Now() - killed));
  // HQ stopped waiting for aggregator-0 once its lease expired.
  absl::StatusOr<HqStatus> s = c.QueryHq();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->server.live_aggregators, std::vector<std::string>{"agg-1"});
  EXPECT_LE(s->server.max_round_contributors, 4);
  EXPECT_EQ(s->server.staleness.max(), 0);
  ExpectHqAccounting(*s);
  // Every round since has all four workers, through one aggregator.
  const int64_t v0 = s->server.version;
  const int64_t applied0 = s->server.gradients_applied;
  ReachVersion(c, v0 + 20);
  s = c.QueryHq();
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->server.gradients_applied - applied0, 4 * (s->server.version - v0));
  absl::StatusOr<AggregatorStatus> agg = c.QueryAggregator(1);
  ASSERT_TRUE(agg.ok());
  ExpectAggregatorAccounting(*agg);
}

std::vector<int64_t> CheckpointVersions(const std::string& dir) {
  std::vector<int64_t> versions;
  const std::regex name("checkpoint-([0-9]+)\\.pt");
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    std::smatch m;
    const std::string file = entry.path().filename().string();
    if (std::regex_match(file, m, name)) versions.push_back(std::stoll(m[1]));
  }
  std::sort(versions.rbegin(), versions.rend());
  return versions;
}

TEST_F(FaultsTest, HqResumesFromItsNewestCheckpointAndSkipsADamagedOne) {
  ProcessClusterOptions o = Options("hq-kill");
  const std::string dir = absl::StrCat(o.run_dir, "/checkpoints");
  o.hq_args.insert(o.hq_args.end(), {absl::StrCat("--checkpoint_dir=", dir),
                                     "--checkpoint_every_versions=20", "--checkpoint_every_s=0"});
  ProcessCluster c(o);
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 70);
  const int64_t at_kill = c.Version();
  c.Kill("hq");
  const absl::Time killed = absl::Now();
  std::vector<int64_t> versions = CheckpointVersions(dir);
  ASSERT_GE(versions.size(), 2u);
  const int64_t newest = versions[0];
  ASSERT_TRUE(c.Restart("hq").ok());
  absl::StatusOr<HqStatus> s = c.QueryHq();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->server.resumed_from, newest);
  ReachVersion(c, newest + 10);  // the tree follows HQ back and goes on
  std::printf(
      "measured: HQ kill -9 at version %lld, resumed from %lld (%lld versions lost), "
      "10 versions later after %.2f s\n",
      static_cast<long long>(at_kill), static_cast<long long>(newest),
      static_cast<long long>(at_kill - newest), absl::ToDoubleSeconds(absl::Now() - killed));
  EXPECT_EQ(c.QueryHq()->server.staleness.max(), 0);

  // Again, with the newest checkpoint damaged on disk: HQ says so and
  // takes the one before.
  ReachVersion(c, newest + 45);
  c.Kill("hq");
  versions = CheckpointVersions(dir);
  ASSERT_GE(versions.size(), 2u);
  const std::string damaged =
      absl::StrCat(dir, "/checkpoint-", std::string(12 - std::to_string(versions[0]).size(), '0'),
                   versions[0], ".pt");
  {
    std::fstream f(damaged, std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good()) << damaged;
    f.seekg(0, std::ios::end);
    const std::streamoff size = f.tellg();
    f.seekp(size / 2);
    f.put('\x5a');
    f.seekp(size / 2 + 1);
    f.put('\xa5');
  }
  ASSERT_TRUE(c.Restart("hq").ok());
  s = c.QueryHq();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->server.resumed_from, versions[1]);
  std::ifstream log(c.LogOf("hq"));
  std::stringstream text;
  text << log.rdbuf();
  EXPECT_TRUE(
      absl::StrContains(text.str(), absl::StrCat("skipped the damaged checkpoint ", damaged)))
      << "see " << c.LogOf("hq");
  ReachVersion(c, versions[1] + 10);
  ExpectHqAccounting(*c.QueryHq());
}

// A graceful stop (SIGTERM: docker stop, kubectl delete) while async
// aggregates keep arriving: intake stops, what is being applied finishes,
// then the last checkpoint. Nothing HQ published (so nothing it
// acknowledged) is missing from it: the aggregators never saw weights newer
// than the version HQ resumes from.
TEST_F(FaultsTest, ASigtermedHqResumesFromEveryUpdateItPublished) {
  ProcessClusterOptions o = Options("hq-sigterm");
  const std::string dir = absl::StrCat(o.run_dir, "/checkpoints");
  // Only the checkpoint of the stop itself.
  o.hq_args.insert(o.hq_args.end(),
                   {"--mode=async", absl::StrCat("--checkpoint_dir=", dir),
                    "--checkpoint_every_versions=1000000", "--checkpoint_every_s=0"});
  ProcessCluster c(o);
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 60);
  ChildProcess& hq = c.child("hq");
  hq.Stop(absl::Seconds(60));  // SIGTERM, then wait (SIGKILL after 60 s)
  ASSERT_TRUE(hq.ExitedCleanly()) << hq.DescribeExit() << "; see " << c.LogOf("hq");
  int64_t seen = -1;
  for (int a = 0; a < 2; ++a) {
    absl::StatusOr<AggregatorStatus> s = c.QueryAggregator(a);
    ASSERT_TRUE(s.ok()) << s.status();
    seen = std::max(seen, s->version);
  }
  ASSERT_TRUE(c.Restart("hq").ok());
  absl::StatusOr<HqStatus> s = c.QueryHq();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GE(s->server.resumed_from, seen);
  EXPECT_GE(s->server.resumed_from, 60);
  ReachVersion(c, s->server.resumed_from + 10);
  ExpectHqAccounting(*c.QueryHq());
}

class PausedWorkerTest : public FaultsTest,
                         public ::testing::WithParamInterface<std::vector<std::string>> {};

TEST_P(PausedWorkerTest, APausedWorkerLosesItsLeaseAndItsStaleGradientsAreNeverMisapplied) {
  ProcessClusterOptions o = Options("pause");
  o.hq_args.insert(o.hq_args.end(), GetParam().begin(), GetParam().end());
  ProcessCluster c(o);
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 20);
  c.Stop("worker-1");
  const int64_t at_stop = c.Version();
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<AggregatorStatus> s = c.QueryAggregator(1);
        return s.ok() && !Live(*s).count("worker-1");
      },
      3 * kLease));
  ReachVersion(c, at_stop + 20);  // the cluster goes on without it
  c.Continue("worker-1");
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<AggregatorStatus> s = c.QueryAggregator(1);
        return s.ok() && Live(*s).count("worker-1");
      },
      absl::Seconds(10)));
  ReachVersion(c, c.Version() + 20);
  absl::StatusOr<HqStatus> s = c.QueryHq();
  ASSERT_TRUE(s.ok());
  // Sync applies nothing stale, ssp nothing beyond its bound; async applies
  // what comes, and records every applied gradient's staleness.
  if (s->server.mode.mode == Mode::kSync) {
    EXPECT_EQ(s->server.staleness.max(), 0);
  }
  if (s->server.mode.mode == Mode::kSsp) {
    EXPECT_LE(s->server.staleness.max(), s->server.mode.staleness);
  }
  int64_t recorded = 0;
  for (int64_t n : s->server.staleness.counts()) recorded += n;
  EXPECT_EQ(recorded, s->server.gradients_applied);
  EXPECT_LE(s->server.max_round_contributors, 4);
  ExpectHqAccounting(*s);
  for (int a = 0; a < 2; ++a) {
    absl::StatusOr<AggregatorStatus> agg = c.QueryAggregator(a);
    ASSERT_TRUE(agg.ok());
    ExpectAggregatorAccounting(*agg);
  }
}

std::string ModeName(const ::testing::TestParamInfo<std::vector<std::string>>& info) {
  static const char* const kNames[] = {"sync", "ssp2", "async"};
  return kNames[info.index];
}

INSTANTIATE_TEST_SUITE_P(Modes, PausedWorkerTest,
                         ::testing::Values(std::vector<std::string>{"--mode=sync"},
                                           std::vector<std::string>{"--mode=ssp", "--staleness=2"},
                                           std::vector<std::string>{"--mode=async"}),
                         ModeName);

// Runs a command line, returning its stdout.
std::string Output(const std::string& command) {
  std::string out;
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

TEST_F(FaultsTest, HipsStatusShowsTheLiveTreeAndFollowsAFailover) {
  ProcessClusterOptions o = Options("status");
  o.hq_args = {"--max_versions=100000", "--eval_every=10"};
  ProcessCluster c(o);
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 20);
  // Evaluations are asynchronous: wait for one after version 0.
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<HqStatus> s = c.QueryHq();
        return s.ok() && s->latest_eval.has_value() && s->latest_eval->version >= 10;
      },
      absl::Seconds(60)));
  const std::string status =
      kBin + "/hips status --hq=" + c.hq_address() + " --run_dir=" + c.run_dir();
  const std::string text = Output(status + " --json");
  const nlohmann::json json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  ASSERT_TRUE(json.is_object()) << text;
  const nlohmann::json& hq = json["hq"];
  EXPECT_EQ(hq["live_aggregators"], 2) << text;
  EXPECT_EQ(hq["live_workers"], 4) << text;
  EXPECT_GE(hq["version"].get<int64_t>(), 20) << text;
  EXPECT_GT(hq["samples_per_s"].get<double>(), 0) << text;
  // The newest evaluation (of a version that is a multiple of 10, on the
  // 10,000 test examples); no final one while training goes on.
  const nlohmann::json& eval = hq["latest_eval"];
  ASSERT_TRUE(eval.is_object()) << text;
  EXPECT_GE(eval["version"].get<int64_t>(), 10) << text;
  EXPECT_EQ(eval["version"].get<int64_t>() % 10, 0) << text;
  EXPECT_EQ(eval["examples"], 10000) << text;
  EXPECT_GT(eval["accuracy"].get<double>(), 0.1) << text;
  EXPECT_LE(eval["accuracy"].get<double>(), 1.0) << text;
  EXPECT_TRUE(hq["final_eval"].is_null()) << text;
  std::set<std::string> ids;
  for (const nlohmann::json& a : json["aggregators"]) {
    EXPECT_TRUE(a["reachable"].get<bool>()) << text;
    ids.insert(a["id"].get<std::string>());
    for (const nlohmann::json& w : a["workers"]) ids.insert(w["id"].get<std::string>());
  }
  EXPECT_EQ(ids, (std::set<std::string>{"agg-0", "agg-1", "worker-0", "worker-1", "worker-2",
                                        "worker-3"}))
      << text;
  // After aggregator-0 dies, its workers are listed under agg-1, and agg-0
  // is gone once its lease at HQ expired.
  c.Kill("aggregator-0");
  ASSERT_TRUE(WaitFor(
      [&] {
        absl::StatusOr<HqStatus> s = c.QueryHq();
        return s.ok() && s->server.live_aggregators.size() == 1 &&
               s->server.live_workers.size() == 4;
      },
      absl::Seconds(15)));
  const std::string table = Output(status);
  const std::regex agg1_then_workers(
      "agg-1 +aggregator[^\n]*\n( +worker-[0-3] +worker[^\n]*\n){4}");
  EXPECT_TRUE(std::regex_search(table, agg1_then_workers)) << table;
  EXPECT_FALSE(absl::StrContains(table, "agg-0")) << table;
  EXPECT_TRUE(absl::StrContains(table, "1 live aggregators, 4 live workers")) << table;
  EXPECT_TRUE(std::regex_search(
      table, std::regex("\nlatest evaluation: version=[1-9][0-9]*0 accuracy=0\\.[0-9]{4} "
                        "f1=0\\.[0-9]{4}\n")))
      << table;
}

// `hips health ADDRESS`: its exit code and what it printed.
std::pair<int, std::string> Health(const std::string& address, const std::string& flags = "") {
  const std::string out = Output(absl::StrCat(kBin, "/hips health ", address, " ", flags,
                                              " --timeout_ms=1000 2>&1; echo \"rc=$?\""));
  const size_t rc = out.rfind("rc=");
  return {rc == std::string::npos ? -1 : std::atoi(out.c_str() + rc + 3), out};
}

// Each tier's grpc.health.v1 answer follows what it can do: HQ serves while
// it runs; an aggregator serves while HQ answers it (not while HQ is
// paused); a worker serves once it computes on weights. `hips health` exits
// 0 exactly when SERVING, with --live whenever the daemon answers.
TEST_F(FaultsTest, HealthFollowsWhatEachTierCanDo) {
  ProcessClusterOptions o = Options("health");
  o.worker_health = true;
  ProcessCluster c(o);
  ASSERT_TRUE(c.Start().ok());
  ReachVersion(c, 5);
  auto serving = [](const std::string& address) {
    const auto [rc, out] = Health(address);
    return rc == 0 && absl::StrContains(out, address + ": SERVING");
  };
  EXPECT_TRUE(serving(c.hq_address())) << Health(c.hq_address()).second;
  for (int a = 0; a < 2; ++a) {
    EXPECT_TRUE(serving(c.aggregator_address(a))) << Health(c.aggregator_address(a)).second;
  }
  for (int k = 0; k < 4; ++k) {
    ASSERT_GT(c.WorkerHealthPort(k), 0);
    const std::string worker = absl::StrCat("127.0.0.1:", c.WorkerHealthPort(k));
    EXPECT_TRUE(serving(worker)) << Health(worker).second;
  }
  // HQ paused: it does not answer (exit 1), and once two leases passed
  // without HQ's answer neither aggregator serves.
  c.Stop("hq");
  const auto [hq_rc, hq_out] = Health(c.hq_address());
  EXPECT_EQ(hq_rc, 1) << hq_out;
  EXPECT_EQ(Health(c.hq_address(), "--live").first, 1);
  for (int a = 0; a < 2; ++a) {
    EXPECT_TRUE(WaitFor(
        [&] {
          const auto [rc, out] = Health(c.aggregator_address(a));
          return rc == 1 && absl::StrContains(out, ": NOT_SERVING");
        },
        4 * kLease + absl::Seconds(5)))
        << Health(c.aggregator_address(a)).second;
    // Not ready, but alive: a liveness probe must not restart it.
    const auto [live_rc, live_out] = Health(c.aggregator_address(a), "--live");
    EXPECT_EQ(live_rc, 0) << live_out;
    EXPECT_TRUE(absl::StrContains(live_out, ": NOT_SERVING")) << live_out;
  }
  // HQ back: the aggregators serve again, and training goes on.
  c.Continue("hq");
  for (int a = 0; a < 2; ++a) {
    EXPECT_TRUE(WaitFor([&] { return serving(c.aggregator_address(a)); }, absl::Seconds(15)))
        << Health(c.aggregator_address(a)).second;
  }
  ReachVersion(c, c.Version() + 5);
}

// Runs `hips local` with `flags` into `run_dir`, calling `during(run_dir)`
// once training has begun; returns the summary JSON (null on failure, with
// the reason in the test output).
nlohmann::json RunHipsLocal(const std::string& run_dir, std::vector<std::string> flags,
                            const std::function<void(const std::string&)>& during) {
  std::vector<std::string> argv = {kBin + "/hips", "local", absl::StrCat("--run_dir=", run_dir),
                                   absl::StrCat("--summary_json=", run_dir, "/summary.json"),
                                   "--progress_seconds=1"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  const std::string out = absl::StrCat(run_dir, "/hips.out");
  absl::StatusOr<std::unique_ptr<ChildProcess>> hips = ChildProcess::Spawn("hips", argv, out);
  if (!hips.ok()) {
    ADD_FAILURE() << hips.status();
    return nullptr;
  }
  if (during) {
    const bool training = WaitFor(
        [&] {
          std::ifstream in(out);
          std::stringstream text;
          text << in.rdbuf();
          return std::regex_search(text.str(), std::regex("version=[1-9][0-9]* ")) ||
                 (*hips)->Exited();
        },
        absl::Seconds(120));
    if (!training) ADD_FAILURE() << "no progress; see " << out;
    during(run_dir);
  }
  const bool done = WaitFor([&] { return (*hips)->Exited(); }, absl::Minutes(8));
  if (!done || !(*hips)->ExitedCleanly()) {
    ADD_FAILURE() << "hips local did not finish cleanly; last lines of " << out << ":\n"
                  << TailOfFile(out, 30);
    return nullptr;
  }
  std::ifstream in(absl::StrCat(run_dir, "/summary.json"));
  nlohmann::json summary = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  if (!summary.is_object()) ADD_FAILURE() << run_dir << "/summary.json is not a JSON object";
  return summary.is_object() ? summary : nullptr;
}

// A process `hips local` started and still runs: its pid file names it and
// its command line is the daemon's (never a recycled pid).
// The newest version the progress lines of hips local's output report (-1:
// none yet).
int64_t ReportedVersion(const std::string& out) {
  std::ifstream in(out);
  std::stringstream text;
  text << in.rdbuf();
  const std::string s = text.str();
  const std::regex version("version=([0-9]+) ");
  int64_t newest = -1;
  for (auto it = std::sregex_iterator(s.begin(), s.end(), version); it != std::sregex_iterator();
       ++it) {
    newest = std::max<int64_t>(newest, std::stoll((*it)[1].str()));
  }
  return newest;
}

pid_t DaemonPid(const std::string& run_dir, const std::string& name, const std::string& binary) {
  std::ifstream pid_file(absl::StrCat(run_dir, "/", name, ".pid"));
  pid_t pid = 0;
  if (!(pid_file >> pid) || pid <= 0) return 0;
  std::ifstream cmdline(absl::StrCat("/proc/", pid, "/cmdline"));
  std::string cmd((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  return absl::StrContains(cmd, binary) ? pid : 0;
}

TEST(ChaosTest, HipsLocalSurvivesRandomKillsWithinOnePointOfACleanRun) {
  const std::vector<std::string> flags = {"--epochs=4"};
  const nlohmann::json clean = RunHipsLocal(NewRunDir(::testing::TempDir(), "clean"), flags, nullptr);
  ASSERT_FALSE(clean.is_null());
  const double clean_accuracy = clean["accuracy"].get<double>();

  // Fixed seed: which workers die, and when. One aggregator dies too.
  std::mt19937 rng(20261121);
  int kills = 0;
  const nlohmann::json chaos =
      RunHipsLocal(NewRunDir(::testing::TempDir(), "chaos"), flags, [&](const std::string& run_dir) {
        // A kill every 80 to 160 versions of training (1.5 to 3 s of a
        // clean run), bounded: the run may end first.
        const std::string out = absl::StrCat(run_dir, "/hips.out");
        for (int round = 0; round < 5; ++round) {
          const int64_t at = ReportedVersion(out) + 80 + rng() % 80;
          WaitFor([&] { return ReportedVersion(out) >= at; }, absl::Seconds(30));
          const bool aggregator = round == 2;
          const std::string name = aggregator ? absl::StrCat("aggregator-", rng() % 2)
                                              : absl::StrCat("worker-", rng() % 4);
          const pid_t pid =
              DaemonPid(run_dir, name, aggregator ? "hips-aggregator" : "hips-worker");
          if (pid > 0 && kill(pid, SIGKILL) == 0) {
            ++kills;
            std::printf("chaos: killed %s (pid %d)\n", name.c_str(), static_cast<int>(pid));
          }
        }
      });
  ASSERT_FALSE(chaos.is_null());
  const double chaos_accuracy = chaos["accuracy"].get<double>();
  std::printf(
      "measured: chaos (%d kills) accuracy %.4f vs clean %.4f; clean %.1f s, chaos %.1f s\n", kills,
      chaos_accuracy, clean_accuracy, clean["seconds"].get<double>(),
      chaos["seconds"].get<double>());
  EXPECT_GE(kills, 4);
  EXPECT_GE(chaos_accuracy, 0.87);
  EXPECT_NEAR(chaos_accuracy, clean_accuracy, 0.01);
  // Every kill was a restart.
  int restarts = 0;
  for (const auto& [name, n] : chaos["restarts"].items()) restarts += n.get<int>();
  EXPECT_EQ(restarts, kills) << chaos.dump();
}

}  // namespace
}  // namespace hips
