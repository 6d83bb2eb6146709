#include "aggregator/hq_link.h"

#include <algorithm>
#include <optional>

#include "glog/logging.h"
#include "services/core/push_ledger.h"
#include "services/time/retry.h"

namespace hips {

HqLink::HqLink(Aggregator* aggregator, HqClient* hq, HqLinkOptions options)
    : aggregator_(aggregator), hq_(hq), options_(options), incarnation_(NewIncarnation()) {
  puller_ = std::thread([this] { PullLoop(); });
  forwarder_ = std::thread([this] { ForwardLoop(); });
  heartbeat_ = std::thread([this] { HeartbeatLoop(); });
}

HqLink::~HqLink() { Shutdown(); }

void HqLink::Shutdown() {
  std::call_once(shutdown_once_, [this] {
    stop_.Notify();
    aggregator_->Shutdown();
    heartbeat_.join();
    // Leave at once: HQ's rounds stop waiting for this aggregator now, not
    // a lease from now (an aggregator stopped for good).
    if (HqAnswering()) {
      HeartbeatRequestData bye;
      bye.member = aggregator_->options().id;
      bye.incarnation = incarnation_;
      bye.leaving = true;
      (void)hq_->Heartbeat(bye, options_.clock->Now() + absl::Milliseconds(500));
    }
    hq_->CancelCalls();
    puller_.join();
    forwarder_.join();
  });
}

void HqLink::CheckCredentials(const absl::Status& status) {
  if (!absl::IsUnauthenticated(status) && !absl::IsPermissionDenied(status)) return;
  std::call_once(refused_once_, [&] {
    LOG(ERROR) << "HQ refuses this aggregator's credentials: " << status
               << " (check --token_file, or the certificate's common name against --id)";
    if (options_.on_refused) options_.on_refused(status);
  });
}

void HqLink::PullLoop() {
  Backoff backoff(options_.min_backoff, options_.max_backoff);
  while (!stop_.HasBeenNotified()) {
    // HQ's own weights, not an edge round's copy of them: a delta from HQ
    // applies to these.
    std::shared_ptr<const WeightsSnapshot> latest = aggregator_->HqWeights();
    if (latest != nullptr && latest->training_done) return;  // nothing newer will come
    const int64_t min_version = latest == nullptr ? 0 : latest->version + 1;
    absl::StatusOr<std::shared_ptr<const WeightsSnapshot>> next =
        hq_->PullWeights(min_version, options_.clock->Now() + options_.long_poll, latest);
    if (next.ok()) {
      backoff.Reset();
      VLOG(1) << "weights of version " << (*next)->version << " from HQ";
      aggregator_->PublishWeights(*std::move(next));
    } else if (absl::IsDeadlineExceeded(next.status())) {
      continue;  // the long poll simply ran out
    } else {
      CheckCredentials(next.status());
      LOG_EVERY_N(WARNING, 20) << "pulling weights from HQ: " << next.status();
      if (stop_.WaitForNotificationWithTimeout(backoff.Next())) return;
    }
  }
}

bool HqLink::HqAnswering() const {
  const int64_t last = last_answer_us_.load();
  return last > 0 && absl::ToUnixMicros(options_.clock->Now()) - last <= 2 * lease_us_.load();
}

void HqLink::HeartbeatLoop() {
  absl::Duration lease = absl::Seconds(2);
  bool first_answer = true;
  while (true) {
    const AggregatorCounters c = aggregator_->counters();
    HeartbeatRequestData hb;
    hb.member = aggregator_->options().id;
    hb.incarnation = incarnation_;
    hb.live_workers = c.live_workers;
    hb.forming = c.forming;
    hb.address = options_.address;
    absl::StatusOr<HeartbeatAnswer> answer = hq_->Heartbeat(hb, options_.clock->Now() + lease / 2);
    if (answer.ok()) {
      lease = answer->lease;
      lease_us_.store(absl::ToInt64Microseconds(lease));
      last_answer_us_.store(absl::ToUnixMicros(options_.clock->Now()));
      // Joining a cluster that already trains (this aggregator restarted):
      // its workers may have moved elsewhere, so it does not wait for them.
      if (first_answer && answer->version > 0) aggregator_->EndForming();
      first_answer = false;
      aggregator_->SetDataPositions(std::move(answer->data_positions));
    } else if (!stop_.HasBeenNotified()) {
      CheckCredentials(answer.status());
      LOG_EVERY_N(WARNING, 10) << "heartbeat to HQ: " << answer.status();
    }
    if (stop_.WaitForNotificationWithTimeout(lease / options_.heartbeats_per_lease)) return;
  }
}

void HqLink::ForwardLoop() {
  while (true) {
    std::optional<AggregatePush> aggregate = aggregator_->NextAggregate();
    if (!aggregate.has_value()) return;
    Backoff backoff(options_.min_backoff, options_.max_backoff);
    while (true) {
      absl::StatusOr<PushResult> result = hq_->PushAggregate(*aggregate);
      if (stop_.HasBeenNotified()) {
        // Cancelled by the shutdown, or answered just before it.
        if (result.ok()) {
          aggregator_->ReportForwarded(*aggregate, result);
        } else {
          aggregator_->ReportUndelivered(*aggregate);
        }
        return;
      }
      if (!result.ok()) CheckCredentials(result.status());
      if (result.ok() || !IsRetryable(result.status())) {
        // Either way HQ decided, and counted, what became of it. A
        // duplicate is expected only after a retry; otherwise another
        // aggregator uses this one's id.
        LOG_IF(WARNING, result.ok() && result->duplicate)
            << "HQ already had aggregate " << aggregate->sequence << " of version "
            << aggregate->version << " from " << aggregate->aggregator << " (is the id unique?)";
        // Refusals are part of async, ssp and deadline rounds (HQ counts
        // them by reason); log a sample.
        LOG_IF_EVERY_N(WARNING, !result.ok(), 100)
            << "HQ refused the aggregate of version " << aggregate->version << ": "
            << result.status() << " (every 100th refusal is logged)";
        aggregator_->ReportForwarded(*aggregate, result);
        aggregator_->RecycleSum(std::move(aggregate->sum));
        break;
      }
      LOG_EVERY_N(WARNING, 20) << "pushing the aggregate of version " << aggregate->version << ": "
                               << result.status();
      if (stop_.WaitForNotificationWithTimeout(backoff.Next())) {
        aggregator_->ReportUndelivered(*aggregate);
        return;
      }
    }
  }
}

}  // namespace hips
