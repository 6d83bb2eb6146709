#ifndef HIPS_AGGREGATOR_GRPC_HQ_CLIENT_H_
#define HIPS_AGGREGATOR_GRPC_HQ_CLIENT_H_

#include <memory>
#include <string>

#include "aggregator/hq_client.h"
#include "services/net/security.h"

namespace hips {

// HqClient over gRPC (hips.v1.Hq) as `aggregator_id`, secured and
// authenticated with `credentials`. Thread-safe.
std::unique_ptr<HqClient> CreateGrpcHqClient(const std::string& address,
                                             const std::string& aggregator_id, size_t chunk_bytes,
                                             ClientCredentials credentials);

}  // namespace hips

#endif  // HIPS_AGGREGATOR_GRPC_HQ_CLIENT_H_
