// The one place absl::Status becomes grpc::Status. Abseil's codes are gRPC's,
// number for number, so the code is kept and the message passed unchanged.
#pragma once

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace muserve::server {

grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace muserve::server
