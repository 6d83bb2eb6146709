#ifndef HIPS_CLI_STATUS_CLIENT_H_
#define HIPS_CLI_STATUS_CLIENT_H_

#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "services/net/security.h"
#include "services/types/tier_status.h"

namespace hips {

// Reads the GetStatus of HQ and of aggregators, as the domain types of
// services/core/tier_status.h: what `hips status`, `hips local` and the
// whole-cluster tests compute on. Keeps one channel per address. Not
// thread-safe.
class StatusClient {
 public:
  // Calls are secured and authenticated with `credentials`.
  StatusClient(std::string hq_address, ClientCredentials credentials);
  ~StatusClient();

  // HQ's status. With `wait_for_ready`, waits (up to `timeout`) for a
  // connection instead of failing at once while HQ (re)starts. Errors name
  // HQ's address.
  absl::StatusOr<HqStatus> Hq(absl::Duration timeout, bool wait_for_ready = false);
  // The status of the aggregator serving at `address` (host:port).
  absl::StatusOr<AggregatorStatus> Aggregator(const std::string& address, absl::Duration timeout);

  const std::string& hq_address() const { return hq_address_; }

 private:
  struct Channels;

  const std::string hq_address_;
  const ClientCredentials credentials_;
  std::unique_ptr<Channels> channels_;
};

}  // namespace hips

#endif  // HIPS_CLI_STATUS_CLIENT_H_
