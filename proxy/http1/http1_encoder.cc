#include "proxy/http1/http1_encoder.h"

#include <cstring>

namespace viscount {

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 102:
      return "Processing";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 207:
      return "Multi-Status";
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Content";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      break;
  }
  if (status < 200) return "Informational";
  if (status < 300) return "Success";
  if (status < 400) return "Redirection";
  if (status < 500) return "Client Error";
  return "Server Error";
}

void appendDecimal(Buffer& out, uint64_t value) {
  char digits[24];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + value % 10);
    value /= 10;
  } while (value);
  char* p = out.reserve(n);
  for (int i = 0; i < n; ++i)
    p[i] = digits[n - 1 - i];
  out.commit(n);
}

namespace {

void appendHeader(Buffer& out, std::string_view name, std::string_view value) {
  char* p = out.reserve(name.size() + value.size() + 4);
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  *p++ = ':';
  *p++ = ' ';
  std::memcpy(p, value.data(), value.size());
  p += value.size();
  *p++ = '\r';
  *p++ = '\n';
  out.commit(name.size() + value.size() + 4);
}

void appendHex(Buffer& out, uint64_t value) {
  char digits[20];
  int n = 0;
  do {
    digits[n++] = "0123456789abcdef"[value & 0xf];
    value >>= 4;
  } while (value);
  char* p = out.reserve(n);
  for (int i = 0; i < n; ++i)
    p[i] = digits[n - 1 - i];
  out.commit(n);
}

}  // namespace

void encodeRequestHead(Buffer& out, const UpstreamRequest& req) {
  out.append(req.method());
  out.append(' ');
  out.append(req.target());
  out.append(" HTTP/1.1\r\n");
  if (!req.authority().empty()) appendHeader(out, "host", req.authority());
  req.forEachHeader([&](std::string_view n, std::string_view v) { appendHeader(out, n, v); });
  if (!req.upgrade().empty()) {
    out.append("connection: upgrade\r\n");
    appendHeader(out, "upgrade", req.upgrade());
  }
  if (req.chunked) {
    out.append("transfer-encoding: chunked\r\n");
  } else if (req.content_length) {
    // A zero length is only worth saying for methods whose requests normally carry a body.
    const std::string_view m = req.method();
    if (*req.content_length > 0 || m == "POST" || m == "PUT" || m == "PATCH") {
      out.append("content-length: ");
      appendDecimal(out, *req.content_length);
      out.append("\r\n");
    }
  }
  out.append("\r\n");
}

void encodeResponseHead(Buffer& out, int status, const HeaderList& headers, BodyFraming framing,
                        uint64_t content_length, bool connection_close, bool keep_alive_10) {
  out.append("HTTP/1.1 ");
  appendDecimal(out, static_cast<uint64_t>(status));
  out.append(' ');
  out.append(reasonPhrase(status));
  out.append("\r\n");
  for (const auto& f : headers.fields()) {
    if (!f.removed) appendHeader(out, f.name, f.value);
  }
  switch (framing) {
    case BodyFraming::kContentLength:
      out.append("content-length: ");
      appendDecimal(out, content_length);
      out.append("\r\n");
      break;
    case BodyFraming::kChunked:
      out.append("transfer-encoding: chunked\r\n");
      break;
    case BodyFraming::kNone:
    case BodyFraming::kUntilClose:
      break;
  }
  if (connection_close) {
    out.append("connection: close\r\n");
  } else if (keep_alive_10) {
    out.append("connection: keep-alive\r\n");
  }
  out.append("\r\n");
}

void encodeSwitchingProtocols(Buffer& out, const HeaderList& headers, std::string_view upgrade) {
  out.append("HTTP/1.1 101 Switching Protocols\r\n");
  for (const auto& f : headers.fields()) {
    if (!f.removed) appendHeader(out, f.name, f.value);
  }
  out.append("connection: upgrade\r\n");
  appendHeader(out, "upgrade", upgrade);
  out.append("\r\n");
}

void encodeInformational(Buffer& out, int status, const HeaderList* headers) {
  out.append("HTTP/1.1 ");
  appendDecimal(out, static_cast<uint64_t>(status));
  out.append(' ');
  out.append(reasonPhrase(status));
  out.append("\r\n");
  if (headers) {
    for (const auto& f : headers->fields()) {
      if (!f.removed) appendHeader(out, f.name, f.value);
    }
  }
  out.append("\r\n");
}

void encodeChunk(Buffer& out, std::string_view data) {
  if (data.empty()) return;  // an empty chunk would end the body
  appendHex(out, data.size());
  out.append("\r\n");
  out.append(data);
  out.append("\r\n");
}

void encodeLastChunk(Buffer& out, const HeaderList* trailers) {
  out.append("0\r\n");
  if (trailers) {
    for (const auto& f : trailers->fields()) {
      if (!f.removed) appendHeader(out, f.name, f.value);
    }
  }
  out.append("\r\n");
}

}  // namespace viscount
