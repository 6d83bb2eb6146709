// The CLI without processes: its flags' parsing (every usage error exits 2),
// the children's command lines of hips local (one table of the daemons'
// flags, and what hips local computes per child), and the summary it prints.

#include <cstdio>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/child_flags.h"
#include "cli/cli_flags.h"
#include "cli/cluster_status.h"
#include "cli/listen_ports.h"
#include "cli/local_cluster.h"
#include "cli/run_summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "services/runtime/compression_flags.h"
#include "services/runtime/hq_flags.h"
#include "services/runtime/process_setup.h"
#include "services/runtime/round_flags.h"
#include "services/runtime/training_flags.h"
#include "services/runtime/worker_flags.h"

namespace hips {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsSupersetOf;
using ::testing::Not;

// Restores every flag a test changes.
class CliTest : public ::testing::Test {
 protected:
  absl::FlagSaver saver_;
};

bool HasPrefix(const std::vector<std::string>& args, const std::string& prefix) {
  for (const std::string& a : args) {
    if (absl::StartsWith(a, prefix)) return true;
  }
  return false;
}

TEST_F(CliTest, FlagsParseInEveryFormAndPositionalsComeBack) {
  const std::vector<std::string> positional =
      ParseFlagsOrExit({"local", "--batch_size", "32", "--lr=0.125", "--nonesterov", "--tls",
                        "extra", "--", "--not-a-flag"});
  EXPECT_THAT(positional, ElementsAre("local", "extra", "--not-a-flag"));
  EXPECT_EQ(absl::GetFlag(FLAGS_batch_size), 32);
  EXPECT_EQ(absl::GetFlag(FLAGS_lr), 0.125);
  EXPECT_FALSE(absl::GetFlag(FLAGS_nesterov));
  EXPECT_TRUE(absl::GetFlag(FLAGS_tls));
  EXPECT_TRUE(FlagGiven("batch_size"));
  EXPECT_FALSE(FlagGiven("epochs"));
}

TEST_F(CliTest, AFlagFileSetsItsFlagsAndSkipsCommentsAndBlankLines) {
  const std::string path = ::testing::TempDir() + "/cli_test.flags";
  {
    std::ofstream out(path);
    out << "# the model\n\n--model=cnn\n  --batch_size=16  \n--nonesterov\n";
  }
  EXPECT_TRUE(ParseFlagsOrExit({"--flagfile=" + path, "--batch_size=8"}).empty());
  EXPECT_EQ(absl::GetFlag(FLAGS_model), "cnn");
  EXPECT_EQ(absl::GetFlag(FLAGS_batch_size), 8);  // the later one wins
  std::remove(path.c_str());
}

TEST_F(CliTest, EveryUsageErrorExitsWithCode2NamingTheFlag) {
  const struct {
    std::vector<std::string> args;
    const char* message;
  } cases[] = {
      {{"--no_such_flag"}, "unknown flag --no_such_flag"},
      {{"--lr=abc"}, "--lr=abc"},
      {{"--tls=maybe"}, "--tls=maybe"},
      {{"--batch_size"}, "--batch_size needs a value"},
      {{"--noepochs"}, "unknown flag --noepochs"},  // not a boolean
      {{"--flagfile=/nonexistent/f"}, "--flagfile: cannot read /nonexistent/f"},
  };
  for (const auto& c : cases) {
    EXPECT_EXIT(ParseFlagsOrExit(c.args), ::testing::ExitedWithCode(2), c.message)
        << absl::StrJoin(c.args, " ");
  }
}

TEST_F(CliTest, EveryChildFlagIsAFlagOfHipsAndGoesToTheTiersThatTakeIt) {
  std::set<std::string> seen;
  for (const ChildFlag& f : ChildFlags()) {
    const std::string name(f.flag->Name());
    // Registered (the parser finds it), once in the table, taken by someone.
    EXPECT_EQ(absl::FindCommandLineFlag(name), f.flag) << name;
    EXPECT_TRUE(seen.insert(name).second) << name;
    EXPECT_TRUE(f.hq || f.aggregator || f.worker) << name;
  }
  const std::vector<std::string> hq = ChildFlagArgs(Tier::kHq);
  const std::vector<std::string> agg = ChildFlagArgs(Tier::kAggregator);
  const std::vector<std::string> worker = ChildFlagArgs(Tier::kWorker);
  // HQ and the workers agree on the model and data; the senders of
  // gradients on their hop; the tiers with rounds on the lease.
  for (const char* name : {"--model=", "--data=", "--seed=", "--lr="}) {
    EXPECT_TRUE(HasPrefix(hq, name)) << name;
    EXPECT_TRUE(HasPrefix(worker, name)) << name;
    EXPECT_FALSE(HasPrefix(agg, name)) << name;
  }
  for (const char* name : {"--compression=", "--topk_ratio=", "--error_feedback="}) {
    EXPECT_TRUE(HasPrefix(agg, name)) << name;
    EXPECT_TRUE(HasPrefix(worker, name)) << name;
    EXPECT_FALSE(HasPrefix(hq, name)) << name;
  }
  EXPECT_TRUE(HasPrefix(hq, "--lease_ms=") && HasPrefix(agg, "--lease_ms="));
  EXPECT_FALSE(HasPrefix(worker, "--lease_ms="));
  EXPECT_TRUE(HasPrefix(hq, "--mode=") && !HasPrefix(agg, "--mode="));
  EXPECT_TRUE(HasPrefix(agg, "--coalesce_ms=") && !HasPrefix(hq, "--coalesce_ms="));
  EXPECT_TRUE(HasPrefix(worker, "--batch_size=") && !HasPrefix(hq, "--batch_size="));
}

TEST_F(CliTest, ChildFlagsCarryTheValuesGiven) {
  ParseFlagsOrExit({"--lr=0.125", "--mode=ssp", "--staleness=3", "--compression=bf16"});
  EXPECT_THAT(ChildFlagArgs(Tier::kHq),
              IsSupersetOf({"--lr=0.125", "--mode=ssp", "--staleness=3"}));
  EXPECT_THAT(ChildFlagArgs(Tier::kWorker), IsSupersetOf({"--lr=0.125", "--compression=bf16"}));
  EXPECT_THAT(ChildFlagArgs(Tier::kAggregator), Contains("--compression=bf16"));
}

LocalClusterOptions FiveWorkersTwoAggregators() {
  LocalClusterOptions o;
  o.workers = 5;
  o.aggregators = 2;
  o.run_dir = "/run";
  o.max_samples = 1000;
  o.samples_per_push = 1 << 17;  // fedavg: many local steps
  o.lr_reference_samples = 320;
  o.hq_flags = {"--mode=fedavg"};
  o.aggregator_flags = {"--coalesce_ms=0"};
  o.worker_flags = {"--batch_size=64"};
  return o;
}

TEST(LocalClusterArgsTest, HqGetsTheTreeTheBudgetAndItsCheckpoints) {
  LocalClusterOptions o = FiveWorkersTwoAggregators();
  EXPECT_EQ(CheckpointDirOf(o), "/run/checkpoints");
  const std::vector<std::string> args = HqArgs(o);
  EXPECT_THAT(
      args, IsSupersetOf({"--aggregators=2", "--checkpoint_dir=/run/checkpoints", "--resume=true",
                          "--max_versions=0", "--max_samples=1000", "--max_workers=5",
                          "--max_batch_samples=131072", "--async_lr_batch=320", "--mode=fedavg"}));
  EXPECT_FALSE(HasPrefix(args, "--unix_socket="));
  EXPECT_TRUE(HasPrefix(args, "--admin_token_file="));  // HQ's admin calls
  EXPECT_THAT(args, Contains("--member_key_file=/run/member.key.pub"));  // aggregators' tokens
  EXPECT_FALSE(HasPrefix(args, "--member_token_file="));
  o.unix_sockets = true;
  o.checkpoint_dir = "/elsewhere";
  EXPECT_THAT(HqArgs(o),
              IsSupersetOf({"--unix_socket=/run/hq.sock", "--checkpoint_dir=/elsewhere"}));
}

TEST(LocalClusterArgsTest, EachAggregatorGetsItsShareOfWorkersAndRoomForTheRest) {
  LocalClusterOptions o = FiveWorkersTwoAggregators();
  o.backup_workers = 1;
  o.round_deadline_ms = 20;
  // Worker k's own aggregator is k % 2: three for agg-0, two for agg-1.
  EXPECT_THAT(AggregatorArgs(o, 0, "127.0.0.1:9"),
              IsSupersetOf({"--id=agg-0", "--hq=127.0.0.1:9", "--workers=3", "--max_workers=5",
                            "--quorum=2", "--round_deadline_ms=20", "--coalesce_ms=0"}));
  const std::vector<std::string> second = AggregatorArgs(o, 1, "unix:/run/hq.sock");
  EXPECT_THAT(second, IsSupersetOf({"--id=agg-1", "--workers=2", "--quorum=1"}));
  EXPECT_FALSE(HasPrefix(second, "--admin_token_file="));
  // Its own member token (towards HQ), the cluster token (its status) and
  // the public member key (its homes' tokens).
  EXPECT_THAT(second, IsSupersetOf({"--member_token_file=/run/agg-1.token",
                                    "--token_file=/run/cluster.token",
                                    "--member_key_file=/run/member.key.pub"}));
  o.backup_workers = 0;
  EXPECT_FALSE(HasPrefix(AggregatorArgs(o, 0, "h:1"), "--quorum="));
}

TEST(LocalClusterArgsTest, AWorkerDialsItsOwnAggregatorFirstAndOnlyStragglersSlowDown) {
  LocalClusterOptions o = FiveWorkersTwoAggregators();
  o.slow_workers = {3};
  o.slowdown = 4;
  o.step_delay_ms = 7;
  const std::vector<std::string> aggregators = {"a0:1", "a1:1"};
  const std::vector<std::string> w3 = WorkerArgs(o, 3, aggregators);
  EXPECT_THAT(w3, IsSupersetOf({"--aggregator=a1:1,a0:1", "--index=3", "--workers=5",
                                "--batch_size=64", "--slowdown=4", "--step_delay_ms=7"}));
  const std::vector<std::string> w2 = WorkerArgs(o, 2, aggregators);
  EXPECT_THAT(w2, Contains("--aggregator=a0:1,a1:1"));
  EXPECT_FALSE(HasPrefix(w2, "--slowdown="));
  // A home holds its own member token, not the cluster's.
  EXPECT_THAT(w2, Contains("--member_token_file=/run/worker-2.token"));
  EXPECT_FALSE(HasPrefix(w2, "--token_file="));
  EXPECT_FALSE(HasPrefix(w2, "--member_key_file="));
}

// hips local --homes=1000 over 3 worker processes and 2 aggregators:
// process k hosts homes [k·1000/3, (k+1)·1000/3), names them by their
// range in its credentials, and each aggregator expects its processes'
// homes.
TEST(LocalClusterArgsTest, HomesAreSpreadOverTheWorkerProcessesByRange) {
  LocalClusterOptions o = FiveWorkersTwoAggregators();
  o.workers = 3;
  o.homes = 1000;
  EXPECT_EQ(HomesOfRun(o), 1000);
  EXPECT_EQ(ProcessHomes(o, 0).Name(), "worker-[0..332]");
  EXPECT_EQ(ProcessHomes(o, 1).Name(), "worker-[333..665]");
  EXPECT_EQ(ProcessHomes(o, 2).Name(), "worker-[666..999]");
  EXPECT_EQ(WorkerProcessName(o, 2), "worker-host-2");
  EXPECT_EQ(WorkerIdentity(o, 2), "worker-[666..999]");
  const std::vector<std::string> w1 = WorkerArgs(o, 1, {"a0:1", "a1:1"});
  EXPECT_THAT(w1, IsSupersetOf({"--aggregator=a1:1,a0:1", "--first_home=333", "--homes=333",
                                "--workers=1000",
                                "--member_token_file=/run/worker-[333..665].token"}));
  EXPECT_FALSE(HasPrefix(w1, "--index="));
  // agg-0 serves processes 0 and 2 (333 + 334 homes), agg-1 process 1.
  EXPECT_THAT(AggregatorArgs(o, 0, "h:1"), IsSupersetOf({"--workers=667", "--max_workers=1000"}));
  EXPECT_THAT(AggregatorArgs(o, 1, "h:1"), IsSupersetOf({"--workers=333", "--max_workers=1000"}));
  EXPECT_THAT(HqArgs(o), Contains("--max_workers=1000"));
  // Without --homes, one home per process, as before.
  o.homes = 0;
  EXPECT_EQ(WorkerIdentity(o, 2), "worker-2");
  EXPECT_EQ(WorkerProcessName(o, 2), "worker-2");
}

// An aggregator of thousands of homes is one line of counts in hips status.
TEST(HomeCountsTest, LiveHomesAreCountedByState) {
  std::vector<MemberInfo> homes(6);
  for (int i = 0; i < 6; ++i) homes[i].id = absl::StrCat("w", i);
  homes[0].gradients = 3, homes[0].last_version = 100;  // waited for (below)
  homes[1].gradients = 3, homes[1].last_version = 95;   // recent
  homes[2].gradients = 1, homes[2].last_version = 90;   // recent: 10 versions
  homes[3].gradients = 1, homes[3].last_version = 89;   // older
  homes[4].gradients = 0, homes[4].last_version = -1;   // none yet
  homes[5].gradients = 0, homes[5].last_version = -1;
  const HomeCounts c = CountHomes(homes, RoundWait{100, {"w0", "w9"}, 1.0}, 100);
  EXPECT_EQ(c.live, 6);
  EXPECT_EQ(c.waited_for, 1);
  EXPECT_EQ(c.recent, 2);
  EXPECT_EQ(c.older, 1);
  EXPECT_EQ(c.never, 2);
  EXPECT_EQ(DescribeHomeCounts("agg-0", c),
            "agg-0: 6 live homes: 1 waited for, 2 recent (a gradient within 10 versions), 1 "
            "older, 2 none yet");
}

TEST(RunSummaryTest, TheAccountingAndTheFinalLineSayWhatHappened) {
  RunSummary s;
  s.version = 12;
  s.samples = 3072;
  s.seconds = 4.25;
  EvalMetrics m;
  m.accuracy = 0.875;
  m.macro_f1 = 0.8625;
  s.SetMetrics(m);
  EXPECT_EQ(FinalLine(s), "final: version=12 accuracy=0.8750 f1=0.8625 samples=3072 seconds=4.2");
  RunSummary::Accounting a;
  a.received = 50;
  a.applied = 46;
  a.duplicate = 1;
  a.dropped = {{"stale_version", 3}};
  a.max_staleness = 2;
  a.mode = "ssp(2)";
  RunSummary::Accounting::Aggregator g;
  g.id = "agg-0";
  g.received = 26;
  g.forwarded = 25;
  g.dropped = {{"staleness_exceeded", 1}};
  a.aggregators.push_back(g);
  EXPECT_EQ(DescribeAccounting(a),
            "gradients: received=50 applied=46 duplicate=1 pending=0 dropped{stale_version=3} "
            "max_staleness=2 mode=ssp(2)\n"
            "  agg-0: received=26 duplicate=0 forwarded=25 pending=0 "
            "dropped{staleness_exceeded=1}");
}

TEST(RoundWaitTest, APastTwoLeasesProgressLineNamesWhomTheRoundsWaitFor) {
  HqStatus status;
  status.server.round = {12, {"agg-1"}, 0.9};
  const std::map<std::string, RoundWait> below = {{"agg-1", {12, {"worker-3"}, 0.8}},
                                                  {"agg-0", {12, {"worker-2"}, 0.8}}};
  // Two leases of 0.5 s: not yet.
  EXPECT_EQ(WaitingNote(status, absl::Milliseconds(500), below), "");
  status.server.round.waited_s = 1.25;
  EXPECT_EQ(WaitingNote(status, absl::Milliseconds(500), below),
            " | hq's round of version 12 has waited 1.2s for agg-1; agg-1's round of version 12 "
            "has waited 0.8s for worker-3");
  // An aggregator that did not answer, or waits for nobody, adds nothing.
  EXPECT_EQ(WaitingNote(status, absl::Milliseconds(500), {}),
            " | hq's round of version 12 has waited 1.2s for agg-1");
  EXPECT_EQ(WaitingNote(status, absl::Milliseconds(500), {{"agg-1", {12, {}, 0.8}}}),
            " | hq's round of version 12 has waited 1.2s for agg-1");
  // After training, or waiting for nobody: nothing.
  status.server.training_done = true;
  EXPECT_EQ(WaitingNote(status, absl::Milliseconds(500), below), "");
  status.server.training_done = false;
  status.server.round.members.clear();
  EXPECT_EQ(WaitingNote(status, absl::Milliseconds(500), below), "");
  EXPECT_EQ(DescribeRoundWait("agg-0", {3, {"w1", "w2"}, 2.0}),
            "agg-0's round of version 3 has waited 2.0s for w1, w2");
  EXPECT_EQ(DescribeRoundWait("agg-0", {-1, {"w1"}, 2.0}), "");
  // Many homes: five named, the rest counted (six are all named).
  EXPECT_EQ(DescribeRoundWait("agg-0", {3, {"a", "b", "c", "d", "e", "f"}, 2.0}),
            "agg-0's round of version 3 has waited 2.0s for a, b, c, d, e, f");
  EXPECT_EQ(DescribeRoundWait("agg-0", {3, {"a", "b", "c", "d", "e", "f", "g", "h"}, 2.0}),
            "agg-0's round of version 3 has waited 2.0s for a, b, c, d, e and 3 more");
}

// hips local's servers listen below the ephemeral range, each on a port of
// its own that could be bound when it was handed out.
TEST(ListenPortsTest, PortsAreBelowTheEphemeralRangeDistinctAndFree) {
  const auto [low, high] = EphemeralPortRange();
  EXPECT_GE(low, 1024);
  EXPECT_LE(low, high);
  ListenPorts ports(7);
  std::set<int> seen;
  for (int i = 0; i < 20; ++i) {
    const int port = ports.Next();
    if (low <= ListenPorts::kLowest + 100) {
      EXPECT_EQ(port, 0);  // no room below the range: the kernel picks
      continue;
    }
    ASSERT_GE(port, ListenPorts::kLowest);
    EXPECT_LT(port, low);
    EXPECT_TRUE(seen.insert(port).second) << port;
  }
}

}  // namespace
}  // namespace hips
