#ifndef HIPS_TESTS_RPC_PROBE_H_
#define HIPS_TESTS_RPC_PROBE_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "services/net/security.h"

// Calls every RPC of hips's two services once, for the tests of who may
// call what (docs/security.md).

namespace hips {

// A status code by "Service.Rpc" ("Hq.SetMode", "Aggregator.PushGradient").
using Codes = std::map<std::string, grpc::StatusCode>;

// Calls every RPC of HQ at `hq_address` and of the aggregator at
// `aggregator_address` once with `credentials`: speaking as the aggregator
// `aggregator_id` to HQ and as the worker `worker_id` to the aggregator,
// pushing `floats` zeros (async, version 0), pulling without waiting,
// switching HQ to async. Each call's status code.
Codes CallEveryRpc(const std::string& hq_address, const std::string& aggregator_address,
                   const ClientCredentials& credentials, const std::string& aggregator_id,
                   const std::string& worker_id, int64_t floats);

// The RPCs CallEveryRpc calls.
const std::vector<std::string>& EveryRpc();

// `code` for every RPC, except those in `except`.
Codes Every(grpc::StatusCode code, const Codes& except = {});

}  // namespace hips

#endif  // HIPS_TESTS_RPC_PROBE_H_
