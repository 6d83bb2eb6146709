#include "bench/sink_hq_client.h"

#include <utility>

#include "absl/time/clock.h"
#include "services/core/weights_board.h"

namespace hips::bench {
namespace {

class SinkHqClient final : public HqClient {
 public:
  explicit SinkHqClient(int64_t floats) {
    auto snapshot = std::make_shared<WeightsSnapshot>();
    snapshot->layout = *ModelLayout::Create({TensorSpec{"w", {floats}}});
    snapshot->weights.assign(static_cast<size_t>(floats), 0.0f);
    snapshot->mode.mode = Mode::kAsync;
    snapshot->incarnation = absl::ToUnixMicros(absl::Now());
    board_.Publish(std::move(snapshot));
  }

  absl::StatusOr<PushResult> PushAggregate(const AggregatePush& aggregate) override {
    return PushResult{aggregate.version, false, 0};
  }

  absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> PullWeights(
      int64_t min_version, absl::Time deadline, int64_t incarnation) override {
    return board_.WaitFor(min_version, deadline, incarnation);
  }

  absl::StatusOr<HeartbeatAnswer> Heartbeat(const HeartbeatRequestData&, absl::Time) override {
    HeartbeatAnswer answer;
    answer.lease = absl::Seconds(60);
    answer.version = 0;
    return answer;
  }

  void CancelCalls() override { board_.Shutdown(); }

 private:
  WeightsBoard board_;
};

}  // namespace

std::unique_ptr<HqClient> CreateSinkHqClient(int64_t floats) {
  return std::make_unique<SinkHqClient>(floats);
}

}  // namespace hips::bench
