#include "server/api/grpc_status.h"

#include <string>

namespace muserve::server {

// absl::StatusCode and grpc::StatusCode share their numbering (0 OK ...
// 16 UNAUTHENTICATED); a future Abseil code outside it becomes UNKNOWN.
grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const int code = static_cast<int>(status.code());
  const grpc::StatusCode grpc_code = code > 0 && code <= grpc::StatusCode::UNAUTHENTICATED
                                         ? static_cast<grpc::StatusCode>(code)
                                         : grpc::StatusCode::UNKNOWN;
  return grpc::Status(grpc_code, std::string(status.message()));
}

}  // namespace muserve::server
