#ifndef HIPS_AGGREGATOR_HQ_LINK_H_
#define HIPS_AGGREGATOR_HQ_LINK_H_

#include <mutex>
#include <thread>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "aggregator/aggregator.h"
#include "aggregator/hq_client.h"

namespace hips {

struct HqLinkOptions {
  // Longest single PullWeights long poll; bounds how long Shutdown waits.
  absl::Duration long_poll = absl::Seconds(2);
  absl::Duration min_backoff = absl::Milliseconds(50);
  absl::Duration max_backoff = absl::Seconds(2);
};

// Connects an Aggregator to HQ with two threads: one long-polls HQ for newer
// weights and publishes them, the other forwards closed rounds' aggregates,
// retrying UNAVAILABLE (and other transient errors) with backoff. Both
// threads start in the constructor and are joined by Shutdown (idempotent,
// also called by the destructor). `aggregator` and `hq` must outlive it.
class HqLink {
 public:
  HqLink(Aggregator* aggregator, HqClient* hq, HqLinkOptions options = {});
  ~HqLink();

  HqLink(const HqLink&) = delete;
  HqLink& operator=(const HqLink&) = delete;

  void Shutdown();

 private:
  void PullLoop();
  void ForwardLoop();

  Aggregator* const aggregator_;
  HqClient* const hq_;
  const HqLinkOptions options_;
  absl::Notification stop_;
  std::once_flag shutdown_once_;
  std::thread puller_;
  std::thread forwarder_;
};

}  // namespace hips

#endif  // HIPS_AGGREGATOR_HQ_LINK_H_
