#include "tests/served_tiers.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "hq/testing/fake_sgd.h"
#include "services/net/grpc_util.h"

namespace hips {
namespace {

// As the daemons set it: HQ takes aggregators' data calls, an aggregator
// its homes'.
SecurityOptions Serving(SecurityOptions security, MemberRole role) {
  security.serves = role;
  return security;
}

}  // namespace

ServedTiers::ServedTiers(
    const SecurityOptions& hq, const SecurityOptions& aggregator,
    const std::function<void(ParameterServerOptions*, AggregatorOptions*)>& customize,
    const ServeLimits& limits)
    : hq_authorizer_(Serving(hq, MemberRole::kAggregator)),
      aggregator_authorizer_(Serving(aggregator, MemberRole::kWorker)) {
  ParameterServerOptions o;
  o.expected_aggregators = 2;
  o.mode = {Mode::kAsync, 0};
  o.lease = absl::Seconds(60);
  AggregatorOptions a;
  a.id = "agg-0";
  a.expected_workers = 2;
  a.ack_after_hq = false;
  if (customize) customize(&o, &a);
  server_ = std::make_unique<ParameterServer>(
      o, *ModelLayout::Create({{"w", {kFloats}}}),
      std::make_unique<FakeSgd>(std::vector<float>(kFloats, 1.0f)));
  hq_service_ = std::make_unique<HqService>(server_.get(), &eval_, &hq_authorizer_, 1 << 20,
                                            absl::Seconds(5), nullptr, limits);
  hq_ = Serve(hq_service_.get(), hq, &hq_address_);

  aggregator_ = std::make_unique<Aggregator>(a);
  // Its HQ (in memory) takes every aggregate at once.
  std::shared_ptr<const WeightsSnapshot> weights = ZeroWeights(kFloats, 0, {Mode::kAsync, 0});
  upstream_.Publish(weights);
  aggregator_->PublishWeights(weights);
  link_ = std::make_unique<HqLink>(aggregator_.get(), &upstream_);
  aggregator_service_ = std::make_unique<AggregatorService>(
      aggregator_.get(), &aggregator_authorizer_, 1 << 20, absl::Seconds(5), nullptr, limits);
  aggregator_server_ = Serve(aggregator_service_.get(), aggregator, &aggregator_address_);
}

ServedTiers::~ServedTiers() {
  link_->Shutdown();
  aggregator_->Shutdown();
  aggregator_server_->Shutdown();
  hq_->Shutdown();
}

std::unique_ptr<grpc::Server> ServedTiers::Serve(grpc::Service* service,
                                                 const SecurityOptions& security,
                                                 std::string* address) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      ServerCredentials(security);
  EXPECT_TRUE(credentials.ok()) << credentials.status();
  grpc::ServerBuilder builder;
  ConfigureHipsServer(&builder);
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", *credentials, &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  EXPECT_NE(port, 0);
  *address = absl::StrCat("127.0.0.1:", port);
  return server;
}

}  // namespace hips
