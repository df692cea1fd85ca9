#include "filters/local_reply.h"

#include <string_view>

#include "proxy/http/grpc_status.h"
#include "proxy/http/grpc_wire.h"
#include "telemetry/json_escape.h"

namespace viscount {
namespace {

// {"error":"upstream_timeout","status":504,"request_id":"…"}: the page of docs/reference.md's
// error table, for HTTP clients and people reading logs alike.
class JsonLocalReply final : public LocalReplyFormat {
 public:
  void format(ErrorCode code, const RequestContext& ctx, ResponseHead& head,
              std::string& body) const override {
    const ErrorInfo info = errorInfo(code);
    body.append("{\"error\":\"");
    body.append(info.code);
    body.append("\",\"status\":");
    body.append(std::to_string(info.status));
    body.append(",\"request_id\":");
    appendJsonString(body, ctx.request_id);
    body.append("}\n");

    head.status = info.status;
    head.headers.add("content-type", "application/json");
    head.headers.addCopy("proxy-status", std::string("viscount; error=") +
                                             std::string(info.proxy_status) + "; details=\"" +
                                             std::string(info.code) + "\"");
    if (info.retry_after) head.headers.add("retry-after", "1");
    head.headers.add("cache-control", "no-store");
    head.close_client = info.close_connection;
  }
};

const JsonLocalReply kJsonLocalReply;

// gRPC's trailers-only answer: HTTP 200, `content-type: application/grpc`, and the status in
// `grpc-status` (the table in proxy/http/grpc_status.h) with a message naming viscount's error
// code and the request id, so a gRPC client reports it instead of a parse error.
class GrpcLocalReply final : public LocalReplyFormat {
 public:
  void format(ErrorCode code, const RequestContext& ctx, ResponseHead& head,
              std::string&) const override {
    head.status = 200;
    head.headers.add("content-type", "application/grpc");
    appendStatus(code, ctx, head.headers);
    head.headers.add("cache-control", "no-store");
    head.close_client = false;  // HTTP/2 only: the other streams go on
  }

  bool formatTrailers(ErrorCode code, const RequestContext& ctx,
                      HeaderList& trailers) const override {
    appendStatus(code, ctx, trailers);
    return true;
  }

 private:
  static void appendStatus(ErrorCode code, const RequestContext& ctx, HeaderList& fields) {
    const ErrorInfo info = errorInfo(code);
    const auto status = static_cast<int>(grpcStatusFor(code));
    fields.addCopy("grpc-status", std::to_string(status));
    std::string message = "viscount: ";
    message.append(info.code);
    message.append(" (request_id ");
    message.append(ctx.request_id);
    message.append(")");
    std::string encoded;
    appendGrpcPercentEncoded(encoded, message);
    fields.addCopy("grpc-message", std::move(encoded));
    // gRPC's form of retry-after: a client with a retry policy waits this long.
    if (info.retry_after) fields.add("grpc-retry-pushback-ms", "1000");
  }
};

const GrpcLocalReply kGrpcLocalReply;

}  // namespace

const LocalReplyFormat& LocalReplyFormat::forRequest(const RequestHead& head, bool grpc) {
  if (grpc && head.protocol == Protocol::kHttp2) return kGrpcLocalReply;
  return kJsonLocalReply;
}

const LocalReplyFormat& LocalReplyFormat::json() {
  return kJsonLocalReply;
}

}  // namespace viscount
