#ifndef HIPS_AGGREGATOR_HQ_LINK_H_
#define HIPS_AGGREGATOR_HQ_LINK_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "aggregator/aggregator.h"
#include "aggregator/hq_client.h"
#include "services/time/clock.h"

namespace hips {

struct HqLinkOptions {
  // Longest single PullWeights long poll; bounds how long Shutdown waits.
  absl::Duration long_poll = absl::Seconds(2);
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
  // Heartbeats per lease (HQ says how long the lease is).
  int heartbeats_per_lease = 4;
  // Where this aggregator serves its workers (host:port), told to HQ.
  std::string address;
  // Called once (from one of the link's threads) when HQ refuses this
  // aggregator's credentials (UNAUTHENTICATED or PERMISSION_DENIED): no
  // retry can succeed, so the daemon stops (docs/security.md). Empty: only
  // logged.
  std::function<void(const absl::Status&)> on_refused;
  // Where time comes from (RPC deadlines, whether HQ answers in time); must
  // outlive the link.
  Clock* clock = SystemClock();
};

// Connects an Aggregator to HQ with three threads: one long-polls HQ for
// newer weights and publishes them, one forwards closed rounds' aggregates,
// retrying UNAVAILABLE (and other transient errors) with backoff and jitter,
// and one heartbeats (holding this aggregator's lease at HQ and reporting its
// live workers). They start in the constructor and are joined by Shutdown
// (idempotent, also called by the destructor). `aggregator` and `hq` must
// outlive it.
class HqLink {
 public:
  HqLink(Aggregator* aggregator, HqClient* hq, HqLinkOptions options = {});
  ~HqLink();

  HqLink(const HqLink&) = delete;
  HqLink& operator=(const HqLink&) = delete;

  void Shutdown();

  // HQ answered a heartbeat within the last two leases (the aggregator's
  // health: docs/deploy.md).
  bool HqAnswering() const;

 private:
  void PullLoop();
  void ForwardLoop();
  void HeartbeatLoop();
  // Reports a refusal of this aggregator's credentials (once).
  void CheckCredentials(const absl::Status& status);

  Aggregator* const aggregator_;
  HqClient* const hq_;
  const HqLinkOptions options_;
  absl::Notification stop_;
  std::once_flag shutdown_once_;
  std::once_flag refused_once_;
  std::thread puller_;
  std::thread forwarder_;
  std::thread heartbeat_;
  const int64_t incarnation_;
  std::atomic<int64_t> last_answer_us_{0};  // 0: never
  std::atomic<int64_t> lease_us_{2'000'000};
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_HQ_LINK_H_
