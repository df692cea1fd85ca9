#include "filters/local_reply.h"

#include <string_view>

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

}  // namespace

const LocalReplyFormat& LocalReplyFormat::forRequest(const RequestHead&) {
  return kJsonLocalReply;
}

const LocalReplyFormat& LocalReplyFormat::json() {
  return kJsonLocalReply;
}

}  // namespace viscount
