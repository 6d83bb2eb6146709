#ifndef HIPS_SERVICES_NET_METHODS_H_
#define HIPS_SERVICES_NET_METHODS_H_

// Full method names of hips.v1 (as in hips.proto), for the calls made
// through grpc::GenericStub: the bulk ones, whose messages travel as raw
// ByteBuffers (raw_chunks.h).

namespace hips::method {

inline constexpr char kAggregatorPushGradient[] = "/hips.v1.Aggregator/PushGradient";
inline constexpr char kAggregatorPullWeights[] = "/hips.v1.Aggregator/PullWeights";
inline constexpr char kHqPushAggregate[] = "/hips.v1.Hq/PushAggregate";
inline constexpr char kHqPullWeights[] = "/hips.v1.Hq/PullWeights";

}  // namespace hips::method

#endif  // HIPS_SERVICES_NET_METHODS_H_
