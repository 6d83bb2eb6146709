#include "services/core/push_ledger.h"

#include <set>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hips {
namespace {

using Seen = PushLedger::Seen;

constexpr int64_t kInc = 7;  // a sender process's incarnation

// Records what the callbacks of a push were given.
struct Answers {
  std::vector<PushLedger::Answer> got;
  PushLedger::Callback callback() {
    return [this](PushLedger::Answer a) { got.push_back(std::move(a)); };
  }
};

void Call(std::vector<PushLedger::Callback> callbacks, const PushLedger::Answer& answer) {
  for (PushLedger::Callback& c : callbacks) c(answer);
}

TEST(PushLedgerTest, APushIsNewThenPendingThenAnsweredThenSuperseded) {
  PushLedger ledger;
  EXPECT_EQ(ledger.Look("w0", kInc, 100), Seen::kNew);
  const int64_t ticket = ledger.Open("w0", kInc, 100);
  EXPECT_EQ(ledger.Look("w0", kInc, 100), Seen::kPending);
  EXPECT_EQ(ledger.TicketOf("w0", kInc, 100), ticket);
  EXPECT_EQ(ledger.Look("w0", kInc, 99), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("w0", kInc, 101), Seen::kNew);
  EXPECT_EQ(ledger.Look("w1", kInc, 100), Seen::kNew);  // sequences are per sender
  EXPECT_EQ(ledger.open(), 1);

  // The first attempt and a retry of it wait for the same outcome.
  Answers first, retry;
  ledger.Wait(ticket, first.callback());
  ledger.Wait(ledger.TicketOf("w0", kInc, 100), retry.callback());
  const PushResult result{3, false, 7};
  std::vector<PushLedger::Callback> waiting = ledger.Settle(ticket, result);
  EXPECT_EQ(waiting.size(), 2u);
  Call(std::move(waiting), result);
  ASSERT_EQ(first.got.size(), 1u);
  ASSERT_EQ(retry.got.size(), 1u);
  EXPECT_EQ(first.got[0]->newest_version, 7);
  EXPECT_EQ(ledger.open(), 0);

  // A late retry gets the same answer; once the sender moved on, older
  // pushes are superseded.
  EXPECT_EQ(ledger.Look("w0", kInc, 100), Seen::kAnswered);
  ASSERT_TRUE(ledger.Answered("w0").ok());
  EXPECT_EQ(ledger.Answered("w0")->version, 3);
  ledger.Settle(ledger.Open("w0", kInc, 101), absl::FailedPreconditionError("stale"));
  EXPECT_EQ(ledger.Look("w0", kInc, 100), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("w0", kInc, 101), Seen::kAnswered);
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger.Answered("w0").status()));
  EXPECT_TRUE(absl::IsNotFound(ledger.Answered("w9").status()));
}

TEST(PushLedgerTest, UnnumberedPushesAreNeverRepeatsButCanBeWaitedFor) {
  PushLedger ledger;
  const int64_t a = ledger.Open("w0", kInc, 0);
  const int64_t b = ledger.Open("w0", kInc, 0);
  EXPECT_NE(a, b);
  EXPECT_EQ(ledger.Look("w0", kInc, 0), Seen::kNew);
  EXPECT_EQ(ledger.TicketOf("w0", kInc, 0), 0);
  Answers answers;
  ledger.Wait(b, answers.callback());
  Call(ledger.Settle(b, PushResult{1, false, 1}), PushResult{1, false, 1});
  EXPECT_EQ(answers.got.size(), 1u);
  EXPECT_EQ(ledger.Look("w0", kInc, 0), Seen::kNew);
  EXPECT_TRUE(ledger.Settle(b, PushResult{}).empty());  // settled once only
  EXPECT_TRUE(ledger.numbers().empty());
}

TEST(PushLedgerTest, RecordedPushesOnlyMoveTheNewestSequence) {
  PushLedger ledger;
  ledger.Record("agg-0", kInc, 5);
  ledger.Record("agg-0", kInc, 3);  // never backwards
  EXPECT_EQ(ledger.numbers().at("agg-0").sequence, 5);
  EXPECT_EQ(ledger.numbers().at("agg-0").incarnation, kInc);
  EXPECT_EQ(ledger.Look("agg-0", kInc, 5), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("agg-0", kInc, 4), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("agg-0", kInc, 6), Seen::kNew);
  EXPECT_EQ(ledger.open(), 0);
}

TEST(PushLedgerTest, SettleAllAnswersEveryOpenPush) {
  PushLedger ledger;
  Answers a, b;
  ledger.Wait(ledger.Open("w0", kInc, 10), a.callback());
  ledger.Wait(ledger.Open("w1", kInc, 0), b.callback());
  const absl::Status down = absl::UnavailableError("shutting down");
  Call(ledger.SettleAll(down), down);
  ASSERT_EQ(a.got.size(), 1u);
  ASSERT_EQ(b.got.size(), 1u);
  EXPECT_TRUE(absl::IsUnavailable(a.got[0].status()));
  EXPECT_EQ(ledger.open(), 0);
  EXPECT_EQ(ledger.Look("w0", kInc, 10), Seen::kAnswered);
}

// A member restarted "in the past": its new process numbers its pushes from
// 1 again, far below its predecessor's, and its clock says nothing.
TEST(PushLedgerTest, ARestartedSendersPushesAreNewWhateverTheirNumbers) {
  PushLedger ledger;
  ledger.Settle(ledger.Open("w0", 100, 1'700'000'000'000'000), PushResult{1, false, 1});
  EXPECT_EQ(ledger.Look("w0", 200, 1), Seen::kNew);
  const int64_t ticket = ledger.Open("w0", 200, 1);
  EXPECT_EQ(ledger.numbers().at("w0").incarnation, 200);
  EXPECT_EQ(ledger.numbers().at("w0").sequence, 1);
  EXPECT_EQ(ledger.numbers().at("w0").retired, std::vector<int64_t>{100});
  // Whatever the dead process sends late is a repeat, never applied (its
  // last push still gets its answer until the new process's first settles).
  EXPECT_EQ(ledger.Look("w0", 100, 1'700'000'000'000'000), Seen::kAnswered);
  EXPECT_EQ(ledger.Look("w0", 100, 1'699'999'999'999'999), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("w0", 100, 1'700'000'000'000'001), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("w0", 200, 1), Seen::kPending);
  EXPECT_EQ(ledger.Look("w0", 200, 2), Seen::kNew);
  ledger.Record("w0", 100, 1'700'000'000'000'005);  // a retired one never comes back
  EXPECT_EQ(ledger.numbers().at("w0").incarnation, 200);
  Call(ledger.Settle(ticket, PushResult{2, false, 2}), PushResult{2, false, 2});
  EXPECT_EQ(ledger.Look("w0", 200, 1), Seen::kAnswered);
  EXPECT_EQ(ledger.Answered("w0")->version, 2);
}

TEST(PushLedgerTest, ItKeepsTheLastFewRetiredIncarnationsOnly) {
  PushLedger ledger;
  const int64_t kept = PushLedger::kRetiredIncarnations;
  for (int64_t inc = 1; inc <= kept + 2; ++inc) ledger.Record("w0", inc, 5);
  const PushLedger::Numbers& n = ledger.numbers().at("w0");
  EXPECT_EQ(n.incarnation, kept + 2);
  ASSERT_EQ(static_cast<int64_t>(n.retired.size()), kept);
  EXPECT_EQ(n.retired.front(), 2);  // 1 dropped out: oldest first
  EXPECT_EQ(n.retired.back(), kept + 1);
  EXPECT_EQ(ledger.Look("w0", 2, 5), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("w0", 1, 5), Seen::kNew);  // beyond what it keeps
}

TEST(PushLedgerTest, APushOfARetiredProcessSettlingLateIsNotItsSendersAnswer) {
  PushLedger ledger;
  const int64_t old_ticket = ledger.Open("w0", 1, 9);
  ledger.Settle(ledger.Open("w0", 2, 1), PushResult{4, false, 4});
  EXPECT_EQ(ledger.Look("w0", 1, 9), Seen::kPending);  // still awaits its outcome
  Answers waiting;
  ledger.Wait(old_ticket, waiting.callback());
  Call(ledger.Settle(old_ticket, PushResult{3, false, 4}), PushResult{3, false, 4});
  EXPECT_EQ(waiting.got.size(), 1u);
  EXPECT_EQ(ledger.Look("w0", 2, 1), Seen::kAnswered);
  EXPECT_EQ(ledger.Answered("w0")->version, 4);
  EXPECT_EQ(ledger.Look("w0", 1, 9), Seen::kSuperseded);
}

TEST(PushLedgerTest, RestoreTakesBackACheckpointsNumbers) {
  PushLedger ledger;
  PushLedger::Numbers n;
  n.incarnation = 30;
  n.sequence = 12;
  n.retired = {1, 2, 3, 4, 5, 6};  // more than it keeps: the newest stay
  ledger.Restore("agg-0", n);
  ledger.Restore("agg-1", PushLedger::Numbers{});  // nothing taken in: not held
  EXPECT_FALSE(ledger.Knows("agg-1"));
  EXPECT_EQ(ledger.numbers().at("agg-0").retired, (std::vector<int64_t>{3, 4, 5, 6}));
  EXPECT_EQ(ledger.Look("agg-0", 30, 12), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("agg-0", 30, 13), Seen::kNew);
  EXPECT_EQ(ledger.Look("agg-0", 4, 100), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("agg-0", 31, 1), Seen::kNew);
}

TEST(PushLedgerTest, IncarnationsArePositiveAndDrawnAfresh) {
  std::set<int64_t> drawn;
  for (int i = 0; i < 1000; ++i) {
    const int64_t inc = NewIncarnation();
    EXPECT_GT(inc, 0);
    drawn.insert(inc);
  }
  EXPECT_EQ(drawn.size(), 1000u);  // (a repeat among 1000 draws of 63 bits: ~5e-14)
}

}  // namespace
}  // namespace hips
