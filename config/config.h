#pragma once

// The typed, immutable configuration snapshot. Everything the YAML schema of docs/reference.md can
// say lives here with its default; the loader (config_loader.h) fills it and validates it, and the
// rest of the proxy only ever sees a `ConfigPtr` (shared_ptr<const Config>), so a reload can swap
// the snapshot for new requests while in-flight ones finish on the old one.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/cidr.h"

namespace viscount {

using Duration = std::chrono::milliseconds;
using namespace std::chrono_literals;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * kKiB;

// host:port of a socket to bind. `host` is a numeric IPv4 or IPv6 literal (no brackets); or, with
// `unix_path` set, a Unix-domain socket file (host and port then unused).
struct SocketAddress {
  std::string host;
  uint16_t port = 0;
  std::string unix_path = {};  // absolute; empty for TCP

  bool isUnix() const { return !unix_path.empty(); }
  // "1.2.3.4:80", "[::1]:80" or "unix:/run/viscount.sock"
  std::string text() const;
  bool operator==(const SocketAddress&) const = default;
};

enum class UpstreamScheme { kHttp, kH2c, kHttps };

struct UpstreamUrl {
  UpstreamScheme scheme = UpstreamScheme::kHttp;
  std::string host;  // hostname or IP literal (no brackets); empty with unix_path
  uint16_t port = 80;
  // unix:/path (kHttp) or h2c+unix:/path (kH2c): the upstream listens on this socket file.
  std::string unix_path;
  std::string text;  // as written in the config, normalised (no trailing slash)

  bool isUnix() const { return !unix_path.empty(); }
  // "host:port" ("[::1]:8000" for IPv6), the Host sent for a request that named none;
  // "localhost" for a Unix socket, which has no name of its own.
  std::string authority() const;
  bool operator==(const UpstreamUrl&) const = default;
};

struct TlsServerConfig {
  std::string certificate;
  std::string private_key;
  std::string client_ca;  // empty: no client certificate required
  // The trusted user id is the verified client certificate's subject CN (needs client_ca);
  // x-user-id headers are then ignored from every client.
  bool user_id_from_certificate = false;
  bool operator==(const TlsServerConfig&) const = default;
};

// Mode of a Unix listener's socket file: who may connect (the directory must let them reach it).
constexpr uint32_t kDefaultUnixSocketMode = 0660;

struct ListenerConfig {
  std::string name;
  SocketAddress address;
  uint32_t socket_mode = kDefaultUnixSocketMode;  // only for a unix: address
  std::string upstream;                           // name of an entry in Config::upstreams
  bool http2 = true;
  // Upgrade tokens (RFC 9110 section 7.8) carried through as a tunnel, lowercase; `h2c` never.
  std::vector<std::string> upgrades = {"websocket"};
  std::optional<TlsServerConfig> tls;
  struct Timeouts {
    Duration request_headers = 10s;
    Duration idle = 5min;
    // An established tunnel (an HTTP upgrade) with no byte either way for this long is closed.
    Duration tunnel_idle = 1h;
    bool operator==(const Timeouts&) const = default;
  } timeouts;
  struct Limits {
    uint64_t max_connections = 10000;
    // Tunnels open at once over all workers; an upgrade beyond it gets 503 `overloaded`.
    uint64_t max_tunnels = 1000;
    uint64_t max_request_headers_size = 60 * kKiB;
    uint32_t max_request_headers_count = 100;    // fields in the head (and in trailers)
    uint64_t max_request_body_size = 10 * kMiB;  // 0 = unlimited
    bool operator==(const Limits&) const = default;
  } limits;
  bool operator==(const ListenerConfig&) const = default;
};

struct UpstreamConfig {
  std::string name;
  UpstreamUrl url;
  struct Timeouts {
    Duration connect = 1s;
    Duration request = 15s;
    // Added to the contract: the request's remaining budget in milliseconds is sent upstream in
    // this header (empty: off), and a smaller budget from a trusted client is honoured.
    std::string deadline_header = "x-request-timeout-ms";
    // `grpc_no_deadline: unbounded`: a gRPC call whose client sent no grpc-timeout has no
    // budget (a long-lived stream runs until an end hangs up); `request` (false) gives it the
    // `request` budget like any request.
    bool grpc_unbounded = false;
    bool operator==(const Timeouts&) const = default;
  } timeouts;
  struct Pool {
    uint32_t size = 10;
    uint32_t max_overflow = 20;
    Duration wait_timeout = 30s;
    bool pre_ping = true;
    Duration recycle = 1h;
    Duration idle_timeout = 30s;
    bool operator==(const Pool&) const = default;
  } pool;
  struct Limits {
    uint32_t max_concurrent_requests = 100;
    uint32_t max_queued_requests = 1000;
    Duration queue_timeout = 5s;
    // A response may be preceded by this many 1xx heads, and a head (1xx, final or trailers) may
    // carry this many fields; more is upstream_protocol_error (502).
    uint32_t max_informational_responses = 10;
    uint32_t max_response_headers_count = 100;
    bool operator==(const Limits&) const = default;
  } limits;
  struct Retries {
    uint32_t attempts = 1;
    bool operator==(const Retries&) const = default;
  } retries;
  // Added to the contract: how an https:// upstream is checked and whom viscount shows itself as.
  struct Tls {
    bool verify = true;       // verify the chain and the name; off only for a test upstream
    std::string ca_file;      // PEM bundle to trust; empty = the system's CA store
    std::string server_name;  // SNI and the name checked; empty = the URL's host
    std::string certificate;  // client certificate for mTLS to the upstream (with private_key)
    std::string private_key;
    bool operator==(const Tls&) const = default;
  } tls;
  bool operator==(const UpstreamConfig&) const = default;
};

enum class IdFormat { kUuid4, kUuid7 };

struct ContextConfig {
  struct RequestId {
    std::string header = "x-request-id";
    bool preserve_incoming = true;
    IdFormat generate = IdFormat::kUuid4;
    bool operator==(const RequestId&) const = default;
  } request_id;
  struct CorrelationId {
    std::string header = "x-correlation-id";
    bool operator==(const CorrelationId&) const = default;
  } correlation_id;
  struct UserId {
    std::string header = "x-user-id";
    // Added to the contract: user ids are not generated, so they get their own, wider check
    // (e-mail addresses are common user ids and '@' is not in id_pattern).
    std::string pattern = "^[\\x21-\\x7E]{1,256}$";
    bool operator==(const UserId&) const = default;
  } user_id;
  bool trace_context = true;
  std::vector<Cidr> trusted_sources = {*Cidr::parse("127.0.0.0/8"), *Cidr::parse("::1/128")};
  // The entry "unix" in trusted_sources: clients of a Unix-socket listener are trusted. They have
  // no address a CIDR could match, so they are trusted only when listed by name.
  bool trust_unix_clients = false;
  // Client-identity headers set besides x-forwarded-for and x-forwarded-proto (which always are).
  struct Forwarded {
    bool x_real_ip = false;  // "x-real-ip" in the list
    bool forwarded = false;  // "forwarded": RFC 7239 for=;proto=
    bool operator==(const Forwarded&) const = default;
  } forwarded;
  std::string id_pattern = "^[A-Za-z0-9._:-]{1,128}$";
  bool echo_in_response = true;
  bool operator==(const ContextConfig&) const = default;
};

enum class LogFormat { kJson, kPretty };
enum class LogLevel { kTrace, kDebug, kInfo, kWarn, kError };

struct LoggingConfig {
  std::string access_log = "stdout";  // stdout | stderr | off | a file path
  LogFormat format = LogFormat::kJson;
  LogLevel level = LogLevel::kInfo;
  uint64_t buffer = 8192;  // queued access-log lines before dropping
  // Query parameters whose values the access log writes as REDACTED; lowercase, matched after
  // percent-decoding the name. The upstream always gets the original target.
  std::vector<std::string> redact_query = {"token",  "access_token", "id_token", "api_key",
                                           "apikey", "key",          "password", "passwd",
                                           "secret", "signature",    "sig",      "code"};
  // The fraction of plain successes (status < 400, no error) the access log keeps; every other
  // line is always written. Decided from the trace id, so all hops of a trace agree.
  double sample_success = 1.0;
  // A success slower than this carries its trail too; zero: only failures do.
  Duration trail_slow{0};
  // Headers each line carries under request_headers / response_headers (lowercase names).
  std::vector<std::string> request_headers;
  std::vector<std::string> response_headers;
  // Credentials (authorization, cookie, ...) may be listed above only when this says so.
  bool allow_sensitive_headers = false;
  bool operator==(const LoggingConfig&) const = default;
};

struct AdminConfig {
  std::optional<SocketAddress> address = SocketAddress{"127.0.0.1", 15000};  // nullopt: "off"
  // Who may call the endpoints that change or reveal state (/drain, /config); the probes and
  // /metrics answer anyone who reaches the address.
  std::vector<Cidr> control_from = {*Cidr::parse("127.0.0.0/8"), *Cidr::parse("::1/128")};
  bool operator==(const AdminConfig&) const = default;
};

struct Config {
  uint32_t workers = 0;  // 0 = auto (number of cores)
  Duration drain_timeout = 20s;
  // Reload when the config file changes on disk (an edit, or a Kubernetes ConfigMap update),
  // as SIGHUP does. Only meaningful with a config file.
  bool watch_config = true;
  // Each worker writes a loop turn's output with one io_uring call instead of a send() per
  // socket, when the kernel and any seccomp profile allow it (else send(), as with false).
  bool io_uring = true;
  std::vector<ListenerConfig> listeners;
  std::vector<UpstreamConfig> upstreams;
  ContextConfig context;
  LoggingConfig logging;
  AdminConfig admin;

  std::string source_path;  // file it was loaded from; empty for zero-config mode

  const UpstreamConfig* findUpstream(const std::string& name) const;
  // `workers` with auto resolved against the machine.
  uint32_t effectiveWorkers() const;

  // Compares every setting, source_path included; a reload can use it to skip a no-op swap.
  bool operator==(const Config&) const = default;
};

using ConfigPtr = std::shared_ptr<const Config>;

// Upper bound of `workers`, and of what "auto" resolves to.
constexpr uint32_t kMaxWorkers = 256;

const char* toString(UpstreamScheme scheme);
const char* toString(IdFormat format);
const char* toString(LogFormat format);
const char* toString(LogLevel level);

}  // namespace viscount
