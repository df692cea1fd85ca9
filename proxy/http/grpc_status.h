#pragma once

// gRPC's status codes and the table that maps viscount's error codes to them. It sits beside the
// error table (errors.h): a gRPC client reads `grpc-status`, not the HTTP status, so each local
// reply to a gRPC request carries the status chosen here (filters/local_reply.*).

#include <cstdint>
#include <string_view>

#include "proxy/http/errors.h"

namespace viscount {

// The canonical codes (grpc/doc/statuscodes.md); values are fixed by the protocol.
enum class GrpcStatus : uint8_t {
  kOk = 0,
  kCancelled = 1,
  kUnknown = 2,
  kInvalidArgument = 3,
  kDeadlineExceeded = 4,
  kNotFound = 5,
  kAlreadyExists = 6,
  kPermissionDenied = 7,
  kResourceExhausted = 8,
  kFailedPrecondition = 9,
  kAborted = 10,
  kOutOfRange = 11,
  kUnimplemented = 12,
  kInternal = 13,
  kUnavailable = 14,
  kDataLoss = 15,
  kUnauthenticated = 16,
};

inline constexpr int kGrpcStatusCount = 17;

// The canonical name (`PERMISSION_DENIED`); a code outside the table is UNKNOWN, as gRPC
// clients treat it.
constexpr std::string_view grpcStatusName(int code) {
  constexpr std::string_view kNames[kGrpcStatusCount] = {
      "OK",
      "CANCELLED",
      "UNKNOWN",
      "INVALID_ARGUMENT",
      "DEADLINE_EXCEEDED",
      "NOT_FOUND",
      "ALREADY_EXISTS",
      "PERMISSION_DENIED",
      "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION",
      "ABORTED",
      "OUT_OF_RANGE",
      "UNIMPLEMENTED",
      "INTERNAL",
      "UNAVAILABLE",
      "DATA_LOSS",
      "UNAUTHENTICATED",
  };
  return code >= 0 && code < kGrpcStatusCount ? kNames[code] : kNames[2];
}

// What a gRPC client is told when viscount answers its request itself. Whether it may retry
// later (`grpc-retry-pushback-ms`) follows the error table's retry_after.
constexpr GrpcStatus grpcStatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kNone:
      return GrpcStatus::kOk;
    case ErrorCode::kUpstreamConnectFailed:
    case ErrorCode::kUpstreamReset:
    case ErrorCode::kUpstreamProtocolError:
    case ErrorCode::kOverloaded:
    case ErrorCode::kPoolTimeout:
    case ErrorCode::kDraining:
      return GrpcStatus::kUnavailable;
    case ErrorCode::kUpstreamConnectTimeout:
    case ErrorCode::kUpstreamTimeout:
    case ErrorCode::kRequestHeaderTimeout:
    case ErrorCode::kTunnelIdleTimeout:  // a tunnel is never gRPC; listed so the table is total
      return GrpcStatus::kDeadlineExceeded;
    case ErrorCode::kHeadersTooLarge:
    case ErrorCode::kBodyTooLarge:
    case ErrorCode::kUriTooLong:
      return GrpcStatus::kResourceExhausted;
    case ErrorCode::kNotImplemented:
      return GrpcStatus::kUnimplemented;
    case ErrorCode::kBadRequest:
    case ErrorCode::kVersionNotSupported:
    case ErrorCode::kExpectationFailed:
    case ErrorCode::kClientDisconnected:
    case ErrorCode::kClientTimeout:
    case ErrorCode::kInternalError:
    case ErrorCode::kCount:
      return GrpcStatus::kInternal;
  }
  return GrpcStatus::kInternal;
}

}  // namespace viscount
