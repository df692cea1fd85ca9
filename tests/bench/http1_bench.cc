// What an HTTP/1 request pays for idle connections being small: a request reader taken from the
// worker's pool and given back (reset, trimmed), and the client address written as text (access
// log, x-forwarded-for) instead of copied from strings kept per connection. Parsing a usual
// request head is timed beside them for scale.

#include <arpa/inet.h>
#include <benchmark/benchmark.h>

#include <string>
#include <string_view>

#include "proxy/http1/http1_parser.h"
#include "proxy/http1/http1_server.h"
#include "proxy/net/socket.h"

namespace viscount {
namespace {

// A pooled reader's whole round trip: take, reset, trim, keep.
void BM_Http1ReaderTakeGive(benchmark::State& state) {
  Http1ReaderPool pool;
  for (auto _ : state) {
    Http1RequestReader* reader = pool.take();
    benchmark::DoNotOptimize(reader);
    pool.give(reader);
  }
}
BENCHMARK(BM_Http1ReaderTakeGive);

class PausingHandler : public Http1ParserHandler {
 public:
  bool onHeadersComplete(Http1Head& head) override {
    benchmark::DoNotOptimize(head.headers);
    return true;
  }
  void onBody(std::string_view) override {}
  bool onMessageComplete() override { return true; }
};

// A browser-like request head, parsed and the parser resumed for the next one.
void BM_Http1ParseHead(benchmark::State& state) {
  const std::string head =
      "GET /api/v1/items?id=42&sort=desc HTTP/1.1\r\n"
      "Host: app.internal:8080\r\n"
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\n"
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
      "Accept-Language: en-US,en;q=0.5\r\n"
      "Accept-Encoding: gzip, deflate, br\r\n"
      "Cookie: session=0123456789abcdef; theme=dark\r\n"
      "X-Request-Id: 7f0e2a52-8a8c-4f6b-9c59-1b2f0e6d3a41\r\n"
      "Connection: keep-alive\r\n\r\n";
  PausingHandler handler;
  Http1Parser parser(Http1Parser::Kind::kRequest, handler);
  for (auto _ : state) {
    benchmark::DoNotOptimize(parser.execute(head.data(), 0, head.size()));
    parser.resume();
  }
}
BENCHMARK(BM_Http1ParseHead);

// The client address as a request needs it: "ip:port" for the access log and the ip for
// x-forwarded-for.
void BM_PeerAddressTexts(benchmark::State& state) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(43216);
  inet_pton(AF_INET, "10.244.17.203", &a.sin_addr);
  const PeerAddress peer(reinterpret_cast<const sockaddr*>(&a));
  std::string client_address;
  for (auto _ : state) {
    PeerAddress::TextBuffer text;
    client_address.assign(peer.text(text));
    PeerAddress::TextBuffer ip;
    benchmark::DoNotOptimize(peer.ip(ip));
    benchmark::DoNotOptimize(client_address);
  }
}
BENCHMARK(BM_PeerAddressTexts);

}  // namespace
}  // namespace viscount
