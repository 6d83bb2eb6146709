#ifndef HIPS_WORKER_GRPC_AGGREGATOR_CLIENT_H_
#define HIPS_WORKER_GRPC_AGGREGATOR_CLIENT_H_

#include <memory>
#include <string>

#include "services/net/security.h"
#include "worker/aggregator_client.h"

namespace hips {

// AggregatorClient over gRPC (hips.v1.Aggregator) as `worker_id`, secured
// and authenticated with `credentials`. Thread-safe.
std::unique_ptr<AggregatorClient> CreateGrpcAggregatorClient(const std::string& address,
                                                             const std::string& worker_id,
                                                             size_t chunk_bytes,
                                                             ClientCredentials credentials);

}  // namespace hips

#endif  // HIPS_WORKER_GRPC_AGGREGATOR_CLIENT_H_
