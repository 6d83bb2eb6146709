#include "services/core/push_ledger.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace hips {
namespace {

using Seen = PushLedger::Seen;

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
  EXPECT_EQ(ledger.Look("w0", 100), Seen::kNew);
  const int64_t ticket = ledger.Open("w0", 100);
  EXPECT_EQ(ledger.Look("w0", 100), Seen::kPending);
  EXPECT_EQ(ledger.TicketOf("w0", 100), ticket);
  EXPECT_EQ(ledger.Look("w0", 99), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("w0", 101), Seen::kNew);
  EXPECT_EQ(ledger.Look("w1", 100), Seen::kNew);  // sequences are per sender
  EXPECT_EQ(ledger.open(), 1);

  // The first attempt and a retry of it wait for the same outcome.
  Answers first, retry;
  ledger.Wait(ticket, first.callback());
  ledger.Wait(ledger.TicketOf("w0", 100), retry.callback());
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
  EXPECT_EQ(ledger.Look("w0", 100), Seen::kAnswered);
  ASSERT_TRUE(ledger.Answered("w0").ok());
  EXPECT_EQ(ledger.Answered("w0")->version, 3);
  ledger.Settle(ledger.Open("w0", 101), absl::FailedPreconditionError("stale"));
  EXPECT_EQ(ledger.Look("w0", 100), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("w0", 101), Seen::kAnswered);
  EXPECT_TRUE(absl::IsFailedPrecondition(ledger.Answered("w0").status()));
  EXPECT_TRUE(absl::IsNotFound(ledger.Answered("w9").status()));
}

TEST(PushLedgerTest, UnnumberedPushesAreNeverRepeatsButCanBeWaitedFor) {
  PushLedger ledger;
  const int64_t a = ledger.Open("w0", 0);
  const int64_t b = ledger.Open("w0", 0);
  EXPECT_NE(a, b);
  EXPECT_EQ(ledger.Look("w0", 0), Seen::kNew);
  EXPECT_EQ(ledger.TicketOf("w0", 0), 0);
  Answers answers;
  ledger.Wait(b, answers.callback());
  Call(ledger.Settle(b, PushResult{1, false, 1}), PushResult{1, false, 1});
  EXPECT_EQ(answers.got.size(), 1u);
  EXPECT_EQ(ledger.Look("w0", 0), Seen::kNew);
  EXPECT_TRUE(ledger.Settle(b, PushResult{}).empty());  // settled once only
  EXPECT_TRUE(ledger.newest().empty());
}

TEST(PushLedgerTest, RecordedPushesOnlyMoveTheNewestSequence) {
  PushLedger ledger;
  ledger.Record("agg-0", 5);
  ledger.Record("agg-0", 3);  // never backwards
  EXPECT_EQ(ledger.newest().at("agg-0"), 5);
  EXPECT_EQ(ledger.Look("agg-0", 5), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("agg-0", 4), Seen::kSuperseded);
  EXPECT_EQ(ledger.Look("agg-0", 6), Seen::kNew);
  EXPECT_EQ(ledger.open(), 0);
  EXPECT_GT(FirstSequenceNumber(), 1'600'000'000'000'000);  // microseconds since 1970
}

TEST(PushLedgerTest, SettleAllAnswersEveryOpenPush) {
  PushLedger ledger;
  Answers a, b;
  ledger.Wait(ledger.Open("w0", 10), a.callback());
  ledger.Wait(ledger.Open("w1", 0), b.callback());
  const absl::Status down = absl::UnavailableError("shutting down");
  Call(ledger.SettleAll(down), down);
  ASSERT_EQ(a.got.size(), 1u);
  ASSERT_EQ(b.got.size(), 1u);
  EXPECT_TRUE(absl::IsUnavailable(a.got[0].status()));
  EXPECT_EQ(ledger.open(), 0);
  EXPECT_EQ(ledger.Look("w0", 10), Seen::kAnswered);
}

}  // namespace
}  // namespace hips
