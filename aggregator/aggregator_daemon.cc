#include "aggregator/aggregator_daemon.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "services/core/chunk_codec.h"
#include "services/net/grpc_util.h"

namespace hips {

absl::StatusOr<std::unique_ptr<AggregatorDaemon>> AggregatorDaemon::Start(
    AggregatorDaemonOptions options) {
  if (absl::Status s = ValidateAggregatorOptions(options.aggregator); !s.ok()) return s;
  if (absl::Status s = ValidateChunkBytes(options.chunk_bytes); !s.ok()) return s;
  if (options.hq_address.empty()) return absl::InvalidArgumentError("no HQ address given");

  std::unique_ptr<AggregatorDaemon> d(new AggregatorDaemon);
  d->aggregator_ = std::make_unique<Aggregator>(options.aggregator);
  d->service_ = std::make_unique<AggregatorService>(d->aggregator_.get(), options.chunk_bytes,
                                                    options.link.long_poll * 4);
  grpc::ServerBuilder builder;
  ConfigureHipsServer(&builder);
  builder.AddListeningPort(absl::StrCat(options.host, ":", options.port),
                           grpc::InsecureServerCredentials(), &d->port_);
  builder.RegisterService(d->service_.get());
  d->server_ = builder.BuildAndStart();
  if (d->server_ == nullptr || d->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.host, ":", options.port));
  }
  d->hq_ = CreateGrpcHqClient(options.hq_address, options.aggregator.id, options.chunk_bytes);
  d->link_ = std::make_unique<HqLink>(d->aggregator_.get(), d->hq_.get(), options.link);
  LOG(INFO) << "aggregator " << options.aggregator.id << " listening on " << options.host << ":"
            << d->port_ << ", " << options.aggregator.expected_workers << " workers, HQ at "
            << options.hq_address;
  return d;
}

AggregatorDaemon::~AggregatorDaemon() { Shutdown(); }

void AggregatorDaemon::Shutdown() {
  // Ending the aggregator's waits first lets in-flight long polls return, so
  // the server's shutdown does not wait on them.
  if (aggregator_ != nullptr) aggregator_->Shutdown();
  if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() +
                                            std::chrono::seconds(2));
  if (link_ != nullptr) link_->Shutdown();
}

}  // namespace hips
