#include "config/config_loader.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <regex>
#include <utility>

#include <sys/stat.h>

#include "config/address.h"
#include "config/duration.h"
#include "config/id_regex.h"
#include "config/reserved_headers.h"
#include "config/yaml_reader.h"
#include "proxy/http/ascii.h"

namespace viscount {
namespace {

constexpr size_t kMaxNameLength = 128;
constexpr size_t kMaxConfigFileSize = 16 * kMiB;

// Positions kept for the checks that run after every section is read.
struct ListenerMarks {
  YAML::Mark address;
  YAML::Mark upstream;
  YAML::Mark self;
  bool has_upstream = false;
};

struct HeaderMark {
  std::string path;
  YAML::Mark mark;
};

template <typename Enum>
struct EnumName {
  std::string_view name;
  Enum value;
};

template <typename Enum, size_t N>
void readEnum(const YamlMap& map, std::string_view key, Enum& out,
              const EnumName<Enum> (&names)[N]) {
  const std::string* text = map.scalar(key);
  if (text == nullptr) return;
  std::string expected;
  for (const auto& entry : names) {
    if (entry.name == *text) {
      out = entry.value;
      return;
    }
    expected += (expected.empty() ? "" : (&entry == &names[N - 1] ? " or " : ", "));
    expected += entry.name;
  }
  map.error(key, "invalid value '" + *text + "' (expected " + expected + ")");
}

bool isValidName(std::string_view name) {
  if (name.empty() || name.size() > kMaxNameLength) return false;
  for (char c : name) {
    const bool ok = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

// Two binds conflict when they are the same socket, or when a wildcard of one family already
// covers the other address. With SO_REUSEPORT the kernel would accept both and silently split
// the traffic, so this is the only place the mistake can be caught. Port 0 never conflicts: each
// bind gets its own ephemeral port.
bool bindConflict(const SocketAddress& a, const SocketAddress& b) {
  if (a.isUnix() || b.isUnix()) return a.unix_path == b.unix_path;
  if (a.port == 0 || a.port != b.port) return false;
  if (a.host == b.host) return true;
  const bool a_v6 = a.host.find(':') != std::string::npos;
  const bool b_v6 = b.host.find(':') != std::string::npos;
  if (a_v6 != b_v6) return false;
  const std::string_view wildcard = a_v6 ? "::" : "0.0.0.0";
  return a.host == wildcard || b.host == wildcard;
}

class ConfigParser {
 public:
  explicit ConfigParser(YamlErrors& errors) : errors_(errors) {}

  void parse(const YAML::Node& root, Config& config) {
    const YamlMap top(errors_, root, "",
                      {"workers", "drain_timeout", "watch_config", "io_uring", "listeners",
                       "upstreams", "context", "logging", "admin"});
    if (!top.isMap()) return;
    parseWorkers(top, config);
    top.readDuration("drain_timeout", config.drain_timeout);
    top.readBool("watch_config", config.watch_config);
    top.readBool("io_uring", config.io_uring);
    parseUpstreams(top, config);
    parseListeners(top, config);
    parseContext(
        top.child("context", {"request_id", "correlation_id", "user_id", "trace_context",
                              "trusted_sources", "id_pattern", "echo_in_response", "forwarded"}),
        config.context);
    parseLogging(top.child("logging", {"access_log", "format", "level", "buffer", "redact_query",
                                       "sample", "trail", "headers", "allow_sensitive_headers"}),
                 config.logging, config.context);
    parseAdmin(top.child("admin", {"address", "control_from"}), config.admin);
    checkDeadlineHeaders(config);
    checkListenerReferences(config);
    checkBindConflicts(config);
  }

 private:
  void parseWorkers(const YamlMap& top, Config& config) {
    const std::string* text = top.scalar("workers");
    if (text == nullptr) return;
    if (*text == "auto") {
      config.workers = 0;
      return;
    }
    const auto value = parseUnsigned(*text);
    if (!value || *value < 1 || *value > kMaxWorkers) {
      top.error("workers", "expected auto or an integer from 1 to " + std::to_string(kMaxWorkers) +
                               ", got '" + *text + "'");
      return;
    }
    config.workers = static_cast<uint32_t>(*value);
  }

  // The items of a list-valued key; a null value is an empty list.
  std::vector<YAML::Node> listItems(const YamlMap& map, std::string_view key) {
    const YAML::Node* node = map.value(key);
    if (node == nullptr || node->IsNull()) return {};
    if (!node->IsSequence()) {
      map.error(key, std::string("expected a list, got ") + describeNode(*node));
      return {};
    }
    return {node->begin(), node->end()};
  }

  static std::string itemPath(std::string_view list, size_t index) {
    return std::string(list) + "[" + std::to_string(index) + "]";
  }

  // Reads `name` and checks its spelling and its uniqueness among `seen`.
  void readName(const YamlMap& map, std::string& name,
                std::vector<std::pair<std::string, YAML::Mark>>& seen, const char* what) {
    map.requireKey("name");
    if (!map.readString("name", name)) return;
    const YAML::Mark mark = map.valueMark("name");
    if (!isValidName(name)) {
      map.error("name", "invalid name '" + name + "': use 1 to " + std::to_string(kMaxNameLength) +
                            " letters, digits, '-', '_' or '.'");
    }
    for (const auto& [other, other_mark] : seen) {
      if (other == name) {
        map.error("name", std::string("duplicate ") + what + " name '" + name +
                              "' (first defined at line " + std::to_string(other_mark.line + 1) +
                              ")");
      }
    }
    seen.emplace_back(name, mark);
  }

  void parseUpstreams(const YamlMap& top, Config& config) {
    top.requireKey("upstreams");
    const auto items = listItems(top, "upstreams");
    const YAML::Node* node = top.value("upstreams");
    if (node != nullptr && (node->IsNull() || node->IsSequence()) && items.empty()) {
      top.error("upstreams", "at least one upstream is required");
    }
    std::vector<std::pair<std::string, YAML::Mark>> names;
    for (size_t i = 0; i < items.size(); ++i) {
      const YamlMap map(errors_, items[i], itemPath("upstreams", i),
                        {"name", "url", "timeouts", "pool", "limits", "retries", "tls"});
      if (!map.isMap()) continue;
      UpstreamConfig upstream;
      readName(map, upstream.name, names, "upstream");
      map.requireKey("url");
      if (const std::string* text = map.scalar("url")) {
        std::string why;
        if (auto url = parseUpstreamUrl(*text, &why)) {
          upstream.url = std::move(*url);
        } else {
          map.error("url", "invalid upstream URL '" + *text + "': " + why);
        }
      }
      const YamlMap timeouts =
          map.child("timeouts", {"connect", "request", "deadline_header", "grpc_no_deadline"});
      timeouts.readDuration("connect", upstream.timeouts.connect, Duration(1));
      timeouts.readDuration("request", upstream.timeouts.request, Duration(1));
      readDeadlineHeader(timeouts, upstream.timeouts.deadline_header);
      if (std::string value; timeouts.readString("grpc_no_deadline", value)) {
        if (value == "request" || value == "unbounded") {
          upstream.timeouts.grpc_unbounded = value == "unbounded";
        } else {
          timeouts.error("grpc_no_deadline",
                         "'" + value + "' is neither 'request' nor 'unbounded'");
        }
      }

      const YamlMap pool = map.child(
          "pool", {"size", "max_overflow", "wait_timeout", "pre_ping", "recycle", "idle_timeout"});
      pool.readUnsigned("size", upstream.pool.size);
      pool.readUnsigned("max_overflow", upstream.pool.max_overflow);
      pool.readDuration("wait_timeout", upstream.pool.wait_timeout);
      pool.readBool("pre_ping", upstream.pool.pre_ping);
      pool.readDuration("recycle", upstream.pool.recycle, Duration(1));
      pool.readDuration("idle_timeout", upstream.pool.idle_timeout, Duration(1));
      if (pool.isMap() && upstream.pool.size == 0 && upstream.pool.max_overflow == 0) {
        errors_.add(pool.mark(), pool.path() +
                                     ": size and max_overflow are both 0, so no connection "
                                     "could ever be opened");
      }

      const YamlMap limits =
          map.child("limits", {"max_concurrent_requests", "max_queued_requests", "queue_timeout",
                               "max_informational_responses", "max_response_headers_count"});
      limits.readUnsigned("max_concurrent_requests", upstream.limits.max_concurrent_requests, 1);
      limits.readUnsigned("max_queued_requests", upstream.limits.max_queued_requests);
      limits.readDuration("queue_timeout", upstream.limits.queue_timeout);
      limits.readUnsigned("max_informational_responses",
                          upstream.limits.max_informational_responses, 0, 1000);
      limits.readUnsigned("max_response_headers_count", upstream.limits.max_response_headers_count,
                          1, 65535);

      map.child("retries", {"attempts"}).readUnsigned("attempts", upstream.retries.attempts);
      if (map.has("tls")) parseUpstreamTls(map, upstream);
      config.upstreams.push_back(std::move(upstream));
    }
  }

  void parseListeners(const YamlMap& top, Config& config) {
    top.requireKey("listeners");
    const auto items = listItems(top, "listeners");
    const YAML::Node* node = top.value("listeners");
    if (node != nullptr && (node->IsNull() || node->IsSequence()) && items.empty()) {
      top.error("listeners", "at least one listener is required");
    }
    std::vector<std::pair<std::string, YAML::Mark>> names;
    for (size_t i = 0; i < items.size(); ++i) {
      const YamlMap map(errors_, items[i], itemPath("listeners", i),
                        {"name", "address", "socket_mode", "upstream", "http2", "upgrades", "tls",
                         "timeouts", "limits"});
      if (!map.isMap()) continue;
      ListenerConfig listener;
      ListenerMarks marks;
      marks.self = map.mark();
      readName(map, listener.name, names, "listener");
      map.requireKey("address");
      if (const std::string* text = map.scalar("address")) {
        std::string why;
        if (auto address = parseSocketAddress(*text, &why)) {
          listener.address = std::move(*address);
        } else {
          map.error("address", "invalid address '" + *text + "': " + why);
        }
      }
      if (listener.address.isUnix()) checkSocketDirectory(map, listener.address.unix_path);
      readSocketMode(map, listener);
      marks.address = map.valueMark("address");
      marks.has_upstream = map.has("upstream");
      map.readString("upstream", listener.upstream);
      marks.upstream = map.valueMark("upstream");
      map.readBool("http2", listener.http2);
      if (map.has("upgrades")) parseUpgrades(map, listener);
      if (map.has("tls")) {
        parseTls(map.child("tls",
                           {"certificate", "private_key", "client_ca", "user_id_from_certificate"}),
                 listener);
      }

      const YamlMap timeouts = map.child("timeouts", {"request_headers", "idle", "tunnel_idle"});
      timeouts.readDuration("request_headers", listener.timeouts.request_headers, Duration(1));
      timeouts.readDuration("idle", listener.timeouts.idle, Duration(1));
      timeouts.readDuration("tunnel_idle", listener.timeouts.tunnel_idle, Duration(1));

      const YamlMap limits =
          map.child("limits", {"max_connections", "max_tunnels", "max_request_headers_size",
                               "max_request_headers_count", "max_request_body_size"});
      limits.readUnsigned("max_connections", listener.limits.max_connections, 1,
                          std::numeric_limits<uint32_t>::max());
      limits.readUnsigned("max_tunnels", listener.limits.max_tunnels, 0,
                          std::numeric_limits<uint32_t>::max());
      limits.readSize("max_request_headers_size", listener.limits.max_request_headers_size, 1);
      limits.readUnsigned("max_request_headers_count", listener.limits.max_request_headers_count, 1,
                          65535);
      limits.readSize("max_request_body_size", listener.limits.max_request_body_size);

      config.listeners.push_back(std::move(listener));
      listener_marks_.push_back(marks);
    }
  }

  // Upgrade tokens are matched case-insensitively, so they are kept lowercase. h2c would turn
  // the connection into HTTP/2 behind our back (RFC 9113 section 3.1 removed it): never.
  void parseUpgrades(const YamlMap& map, ListenerConfig& listener) {
    const auto items = listItems(map, "upgrades");
    if (!map.value("upgrades")->IsSequence() && !map.value("upgrades")->IsNull()) return;
    std::vector<std::string> tokens;
    for (size_t i = 0; i < items.size(); ++i) {
      const YAML::Node& item = items[i];
      std::string token = item.IsScalar() ? item.Scalar() : std::string();
      for (char& c : token)
        c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
      const bool valid = !token.empty() && token.find_first_not_of(
                                               "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-.^_`|~"
                                               "/") == std::string::npos;
      if (!valid || token == "h2c" || token.rfind("h2c/", 0) == 0) {
        const std::string got = item.IsScalar() ? "'" + item.Scalar() + "'" : describeNode(item);
        errors_.add(item.Mark(),
                    itemPath(map.path("upgrades"), i) +
                        (valid ? ": h2c is never carried as an upgrade"
                               : ": expected an Upgrade token such as websocket, got " + got));
        continue;
      }
      tokens.push_back(std::move(token));
    }
    listener.upgrades = std::move(tokens);
  }

  // The directory must exist when viscount binds; a typo there would otherwise only show at start.
  void checkSocketDirectory(const YamlMap& map, const std::string& path) {
    const std::string directory = path.substr(0, std::max<size_t>(path.rfind('/'), 1));
    struct stat st {};
    if (::stat(directory.c_str(), &st) != 0) {
      map.error("address", "the directory " + directory + " of the Unix socket does not exist (" +
                               std::strerror(errno) + ")");
    } else if (!S_ISDIR(st.st_mode)) {
      map.error("address", directory + " (for the Unix socket) is not a directory");
    }
  }

  // An octal file mode such as "0660" (YAML would read 0660 unquoted as a string too).
  void readSocketMode(const YamlMap& map, ListenerConfig& listener) {
    const std::string* text = map.scalar("socket_mode");
    if (text == nullptr) return;
    if (!listener.address.isUnix()) {
      map.error("socket_mode", "only a unix: address has a socket file mode");
      return;
    }
    uint32_t mode = 0;
    bool ok = !text->empty() && text->size() <= 4;
    for (char c : *text) {
      ok = ok && c >= '0' && c <= '7';
      mode = mode * 8 + static_cast<uint32_t>(c - '0');
    }
    if (!ok) {
      map.error("socket_mode", "invalid mode '" + *text + "' (expected octal such as 0660)");
      return;
    }
    listener.socket_mode = mode;
  }

  void parseTls(const YamlMap& tls, ListenerConfig& listener) {
    if (!tls.isMap()) return;
    TlsServerConfig config;
    // Only presence is checked here: the files are read by the TLS layer, which can say whether
    // they exist, parse and match, and which re-reads them on reload.
    tls.requireKey("certificate");
    tls.requireKey("private_key");
    tls.readString("certificate", config.certificate);
    tls.readString("private_key", config.private_key);
    if (const std::string* client_ca = tls.scalar("client_ca")) config.client_ca = *client_ca;
    tls.readBool("user_id_from_certificate", config.user_id_from_certificate);
    if (config.user_id_from_certificate && config.client_ca.empty()) {
      tls.error("user_id_from_certificate",
                "needs client_ca: only a verified client certificate can name the user");
    }
    listener.tls = std::move(config);
  }

  void parseUpstreamTls(const YamlMap& map, UpstreamConfig& upstream) {
    const YamlMap tls =
        map.child("tls", {"verify", "ca_file", "server_name", "certificate", "private_key"});
    if (!tls.isMap()) return;
    if (upstream.url.scheme != UpstreamScheme::kHttps) {
      map.error("tls", "only an https:// upstream uses tls");
      return;
    }
    tls.readBool("verify", upstream.tls.verify);
    tls.readString("ca_file", upstream.tls.ca_file);
    tls.readString("server_name", upstream.tls.server_name);
    tls.readString("certificate", upstream.tls.certificate);
    tls.readString("private_key", upstream.tls.private_key);
    if (upstream.tls.certificate.empty() != upstream.tls.private_key.empty()) {
      map.error("tls", "certificate and private_key go together (a client certificate for mTLS)");
    }
  }

  // "off" turns deadline propagation off.
  void readDeadlineHeader(const YamlMap& map, std::string& header) {
    std::string value;
    if (!map.readString("deadline_header", value)) return;
    if (value == "off") {
      header.clear();
      return;
    }
    if (!std::all_of(value.begin(), value.end(), isTokenChar)) {
      map.error("deadline_header", "invalid header name '" + value + "'");
      return;
    }
    value = toLowerAscii(value);
    if (isReservedContextHeader(value)) {
      map.error("deadline_header", "'" + value + "' is used by the proxy itself");
      return;
    }
    header = value;
    deadline_headers_.push_back({map.path("deadline_header"), map.valueMark("deadline_header")});
  }

  void readHeader(const YamlMap& map, std::string& header) {
    std::string value;
    if (!map.readString("header", value)) return;
    if (!std::all_of(value.begin(), value.end(), isTokenChar)) {
      map.error("header", "invalid header name '" + value + "'");
      return;
    }
    // Stored lowercase: HTTP/2 requires it on the wire and lookups can then compare bytes.
    value = toLowerAscii(value);
    if (isReservedContextHeader(value)) {
      map.error("header", "'" + value + "' is used by the proxy itself and cannot carry an id");
      return;
    }
    header = value;
    context_headers_.push_back({map.path("header"), map.valueMark("header")});
  }

  void checkRegex(const YamlMap& map, std::string_view key, std::string& out) {
    std::string pattern;
    if (!map.readString(key, pattern)) return;
    if (const std::string_view why = idRegexLimitExceeded(pattern); !why.empty()) {
      map.error(key, "invalid regular expression '" + pattern + "': " + std::string(why));
      return;
    }
    try {
      std::regex compiled(pattern, kIdRegexFlags);
    } catch (const std::regex_error& e) {
      map.error(key, "invalid regular expression '" + pattern + "': " + e.what());
      return;
    }
    out = pattern;
  }

  void parseContext(const YamlMap& context, ContextConfig& config) {
    if (!context.isMap()) return;
    const YamlMap request_id =
        context.child("request_id", {"header", "preserve_incoming", "generate"});
    readHeader(request_id, config.request_id.header);
    request_id.readBool("preserve_incoming", config.request_id.preserve_incoming);
    readEnum<IdFormat>(request_id, "generate", config.request_id.generate,
                       {{"uuid4", IdFormat::kUuid4}, {"uuid7", IdFormat::kUuid7}});
    const YamlMap correlation_id = context.child("correlation_id", {"header"});
    readHeader(correlation_id, config.correlation_id.header);
    const YamlMap user_id = context.child("user_id", {"header", "pattern"});
    readHeader(user_id, config.user_id.header);
    checkRegex(user_id, "pattern", config.user_id.pattern);

    context.readBool("trace_context", config.trace_context);
    context.readBool("echo_in_response", config.echo_in_response);
    checkRegex(context, "id_pattern", config.id_pattern);

    if (context.has("trusted_sources")) {
      std::vector<Cidr> sources;
      bool all_valid = true;
      const auto items = listItems(context, "trusted_sources");
      config.trust_unix_clients = false;
      for (size_t i = 0; i < items.size(); ++i) {
        const YAML::Node& item = items[i];
        if (item.IsScalar() && item.Scalar() == "unix") {
          config.trust_unix_clients = true;
          continue;
        }
        const auto cidr = item.IsScalar() ? Cidr::parse(item.Scalar()) : std::nullopt;
        if (!cidr) {
          const std::string got = item.IsScalar() ? "'" + item.Scalar() + "'" : describeNode(item);
          errors_.add(item.Mark(), itemPath(context.path("trusted_sources"), i) +
                                       ": expected a CIDR such as 10.0.0.0/8, ::1/128, a single "
                                       "address or unix, got " +
                                       got);
          all_valid = false;
          continue;
        }
        sources.push_back(*cidr);
      }
      const YAML::Node* node = context.value("trusted_sources");
      if (all_valid && (node->IsNull() || node->IsSequence())) config.trusted_sources = sources;
    }
    readForwarded(context, config.forwarded);
    checkDistinctHeaders(config);
  }

  // A list of CIDRs; `out` is replaced only when every item is one.
  void readCidrList(const YamlMap& map, std::string_view key, std::vector<Cidr>& out) {
    if (!map.has(key)) return;
    std::vector<Cidr> cidrs;
    bool all_valid = true;
    const auto items = listItems(map, key);
    for (size_t i = 0; i < items.size(); ++i) {
      const YAML::Node& item = items[i];
      const auto cidr = item.IsScalar() ? Cidr::parse(item.Scalar()) : std::nullopt;
      if (!cidr) {
        const std::string got = item.IsScalar() ? "'" + item.Scalar() + "'" : describeNode(item);
        errors_.add(item.Mark(), itemPath(map.path(key), i) +
                                     ": expected a CIDR such as 10.0.0.0/8, ::1/128 or a single "
                                     "address, got " +
                                     got);
        all_valid = false;
        continue;
      }
      cidrs.push_back(*cidr);
    }
    const YAML::Node* node = map.value(key);
    if (all_valid && (node->IsNull() || node->IsSequence())) out = std::move(cidrs);
  }

  // context.forwarded: which optional client-identity headers viscount sets.
  void readForwarded(const YamlMap& context, ContextConfig::Forwarded& out) {
    if (!context.has("forwarded")) return;
    ContextConfig::Forwarded chosen;
    const auto items = listItems(context, "forwarded");
    for (size_t i = 0; i < items.size(); ++i) {
      const YAML::Node& item = items[i];
      const std::string name = item.IsScalar() ? item.Scalar() : std::string();
      if (name == "x-real-ip") {
        chosen.x_real_ip = true;
      } else if (name == "forwarded") {
        chosen.forwarded = true;
      } else {
        const std::string got = item.IsScalar() ? "'" + name + "'" : describeNode(item);
        errors_.add(item.Mark(), itemPath(context.path("forwarded"), i) +
                                     ": expected x-real-ip or forwarded, got " + got);
      }
    }
    out = chosen;
  }

  // Three ids in one header would overwrite each other, so each needs its own. The check runs on
  // the final values, defaults included, so renaming one id onto another's default is caught too.
  void checkDistinctHeaders(const ContextConfig& config) {
    const std::pair<const char*, const std::string*> headers[] = {
        {"context.request_id.header", &config.request_id.header},
        {"context.correlation_id.header", &config.correlation_id.header},
        {"context.user_id.header", &config.user_id.header},
    };
    for (size_t i = 0; i < std::size(headers); ++i) {
      for (size_t j = i + 1; j < std::size(headers); ++j) {
        if (*headers[i].second != *headers[j].second) continue;
        // Blame the one written in the file (the later one if both were): the other may be a
        // default the user never saw.
        size_t offender = j;
        size_t other = i;
        const HeaderMark* written = findHeaderMark(headers[j].first);
        if (written == nullptr) {
          std::swap(offender, other);
          written = findHeaderMark(headers[i].first);
        }
        errors_.add(written != nullptr ? written->mark : YAML::Mark::null_mark(),
                    std::string(headers[offender].first) + ": header '" +
                        *headers[offender].second + "' is already used by " + headers[other].first);
      }
    }
  }

  // The deadline header is replaced on every request, so it cannot also carry an id.
  void checkDeadlineHeaders(const Config& config) {
    for (size_t i = 0; i < config.upstreams.size(); ++i) {
      const std::string& header = config.upstreams[i].timeouts.deadline_header;
      const ContextConfig& c = config.context;
      if (header.empty() || (header != c.request_id.header && header != c.correlation_id.header &&
                             header != c.user_id.header)) {
        continue;
      }
      const std::string path = itemPath("upstreams", i) + ".timeouts.deadline_header";
      YAML::Mark mark = YAML::Mark::null_mark();
      for (const auto& written : deadline_headers_) {
        if (written.path == path) mark = written.mark;
      }
      errors_.add(mark, path + ": header '" + header + "' already carries a context id");
    }
  }

  const HeaderMark* findHeaderMark(std::string_view path) const {
    for (const auto& written : context_headers_) {
      if (written.path == path) return &written;
    }
    return nullptr;
  }

  // logging.headers.request / .response: header names for the access log.
  void parseLoggedHeaders(const YamlMap& headers, std::string_view key, bool allow_sensitive,
                          const ContextConfig& context, std::vector<std::string>& out) {
    if (!headers.has(key)) return;
    // Credentials: a log pipeline is no place for them unless the operator says so.
    static constexpr std::string_view kSensitive[] = {"authorization", "proxy-authorization",
                                                      "cookie", "set-cookie"};
    const auto items = listItems(headers, key);
    std::vector<std::string> names;
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string path = itemPath(headers.path(key), i);
      std::string name = items[i].IsScalar() ? toLowerAscii(items[i].Scalar()) : std::string();
      const bool token = !name.empty() && std::all_of(name.begin(), name.end(), isTokenChar);
      if (!token) {
        errors_.add(items[i].Mark(), path + ": expected a header name");
        continue;
      }
      if (!allow_sensitive &&
          std::find(std::begin(kSensitive), std::end(kSensitive), name) != std::end(kSensitive)) {
        errors_.add(items[i].Mark(),
                    path + ": '" + name +
                        "' carries credentials; set logging.allow_sensitive_headers: "
                        "true to log it anyway");
        continue;
      }
      const std::pair<const std::string*, const char*> ids[] = {
          {&context.request_id.header, "request_id"},
          {&context.correlation_id.header, "correlation_id"},
          {&context.user_id.header, "user_id"}};
      bool id_header = false;
      for (const auto& [header, field] : ids) {
        if (*header == name) {
          errors_.add(items[i].Mark(),
                      path + ": '" + name + "' is already in every line as " + field);
          id_header = true;
        }
      }
      if (id_header) continue;
      if (std::find(names.begin(), names.end(), name) != names.end()) {
        errors_.add(items[i].Mark(), path + ": '" + name + "' is listed twice");
        continue;
      }
      names.push_back(std::move(name));
    }
    out = std::move(names);
  }

  void parseLogging(const YamlMap& logging, LoggingConfig& config, const ContextConfig& context) {
    if (!logging.isMap()) return;
    logging.readBool("allow_sensitive_headers", config.allow_sensitive_headers);
    const YamlMap headers = logging.child("headers", {"request", "response"});
    parseLoggedHeaders(headers, "request", config.allow_sensitive_headers, context,
                       config.request_headers);
    parseLoggedHeaders(headers, "response", config.allow_sensitive_headers, context,
                       config.response_headers);
    logging.readString("access_log", config.access_log);
    readEnum<LogFormat>(logging, "format", config.format,
                        {{"json", LogFormat::kJson}, {"pretty", LogFormat::kPretty}});
    readEnum<LogLevel>(logging, "level", config.level,
                       {{"trace", LogLevel::kTrace},
                        {"debug", LogLevel::kDebug},
                        {"info", LogLevel::kInfo},
                        {"warn", LogLevel::kWarn},
                        {"error", LogLevel::kError}});
    logging.readUnsigned("buffer", config.buffer, 1, 10'000'000);
    if (logging.has("redact_query")) {
      std::vector<std::string> names;
      const auto items = listItems(logging, "redact_query");
      bool all_valid = true;
      for (size_t i = 0; i < items.size(); ++i) {
        const std::string path = itemPath(logging.path("redact_query"), i);
        if (!items[i].IsScalar() || items[i].Scalar().empty()) {
          errors_.add(items[i].Mark(), path + ": expected a query parameter name");
          all_valid = false;
          continue;
        }
        std::string name = items[i].Scalar();
        for (char& c : name)
          c = asciiLower(c);
        names.push_back(std::move(name));
      }
      const YAML::Node* node = logging.value("redact_query");
      if (all_valid && (node->IsNull() || node->IsSequence())) config.redact_query = names;
    }
    const YamlMap trail = logging.child("trail", {"slow"});
    if (const std::string* slow = trail.scalar("slow"); slow != nullptr && *slow == "off") {
      config.trail_slow = Duration::zero();
    } else {
      trail.readDuration("slow", config.trail_slow);
    }
    const YamlMap sample = logging.child("sample", {"success"});
    if (const std::string* text = sample.scalar("success")) {
      // A plain decimal fraction: strtod alone would also take "nan", "inf" and hex floats.
      char* end = nullptr;
      const bool plain =
          !text->empty() && text->find_first_not_of("0123456789.") == std::string::npos;
      const double value = plain ? std::strtod(text->c_str(), &end) : -1;
      if (!plain || end != text->c_str() + text->size() || value < 0 || value > 1) {
        sample.error("success", "expected a fraction from 0 to 1, got '" + *text + "'");
      } else {
        config.sample_success = value;
      }
    }
  }

  void parseAdmin(const YamlMap& admin, AdminConfig& config) {
    admin_mark_ = admin.valueMark("address");
    readCidrList(admin, "control_from", config.control_from);
    const std::string* text = admin.scalar("address");
    if (text == nullptr) return;
    if (*text == "off") {
      config.address = std::nullopt;
      return;
    }
    std::string why;
    if (auto address = parseSocketAddress(*text, &why); address && address->isUnix()) {
      admin.error("address", "the admin endpoints listen on TCP only, got '" + *text + "'");
    } else if (address) {
      config.address = std::move(*address);
    } else {
      admin.error("address", "invalid address '" + *text + "' (or off): " + why);
    }
  }

  void checkListenerReferences(Config& config) {
    std::string known;
    for (const auto& upstream : config.upstreams) {
      known += (known.empty() ? "" : ", ") + upstream.name;
    }
    for (size_t i = 0; i < config.listeners.size(); ++i) {
      auto& listener = config.listeners[i];
      const auto& marks = listener_marks_[i];
      const std::string path = itemPath("listeners", i);
      if (!marks.has_upstream) {
        // With a single upstream there is nothing to choose, so the key may be left out.
        if (config.upstreams.size() == 1) {
          listener.upstream = config.upstreams.front().name;
        } else if (config.upstreams.size() > 1) {
          errors_.add(marks.self, path +
                                      ": missing required key 'upstream' (there is more than "
                                      "one upstream: " +
                                      known + ")");
        }
        continue;
      }
      if (!listener.upstream.empty() && config.findUpstream(listener.upstream) == nullptr &&
          !config.upstreams.empty()) {
        errors_.add(marks.upstream, path + ".upstream: unknown upstream '" + listener.upstream +
                                        "' (defined: " + known + ")");
      }
    }
  }

  void checkBindConflicts(const Config& config) {
    bool admin_reported = false;
    for (size_t i = 0; i < config.listeners.size(); ++i) {
      const auto& address = config.listeners[i].address;
      if (address.host.empty() && !address.isUnix()) continue;  // its own error was reported
      // Only the first conflict: one mistake should read as one error.
      for (size_t j = 0; j < i; ++j) {
        if (bindConflict(config.listeners[j].address, address)) {
          errors_.add(listener_marks_[i].address,
                      itemPath("listeners", i) + ".address: " + address.text() +
                          " conflicts with listener '" + config.listeners[j].name + "' on " +
                          config.listeners[j].address.text());
          break;
        }
      }
      if (!admin_reported && config.admin.address && bindConflict(*config.admin.address, address)) {
        admin_reported = true;
        errors_.add(admin_mark_, "admin.address: " + config.admin.address->text() +
                                     " conflicts with listener '" + config.listeners[i].name +
                                     "' on " + address.text());
      }
    }
  }

  YamlErrors& errors_;
  std::vector<ListenerMarks> listener_marks_;
  std::vector<HeaderMark> context_headers_;
  std::vector<HeaderMark> deadline_headers_;
  YAML::Mark admin_mark_;
};

ConfigLoadResult failure(YamlErrors& errors) {
  return {nullptr, errors.take()};
}

}  // namespace

std::string ConfigError::format() const {
  return file + ":" + std::to_string(line) + ":" + std::to_string(column) + ": " + message;
}

ConfigLoadResult loadConfigString(std::string_view yaml, std::string_view file_name) {
  YamlErrors errors{std::string(file_name)};
  YAML::Node root;
  if (!loadSingleDocument(yaml, errors, root)) return failure(errors);
  if (!root.IsDefined() || root.IsNull()) {
    errors.add(YAML::Mark::null_mark(),
               "the config is empty; it needs at least 'listeners' and 'upstreams'");
    return failure(errors);
  }
  Config config;
  ConfigParser(errors).parse(root, config);
  if (!errors.empty()) return failure(errors);
  config.source_path = std::string(file_name);
  return {std::make_shared<const Config>(std::move(config)), {}};
}

ConfigLoadResult loadConfigFile(const std::string& path) {
  const auto cannotRead = [&path](int error_number) {
    return ConfigLoadResult{
        nullptr,
        {ConfigError{path, 0, 0, std::string("cannot read: ") + std::strerror(error_number)}}};
  };
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return cannotRead(errno);
  std::string content;
  char buffer[16384];
  size_t count = 0;
  while ((count = std::fread(buffer, 1, sizeof(buffer), file)) > 0) {
    content.append(buffer, count);
    if (content.size() > kMaxConfigFileSize) {
      std::fclose(file);
      return cannotRead(EFBIG);
    }
  }
  const bool failed = std::ferror(file) != 0;
  const int error_number = errno;
  std::fclose(file);
  if (failed) return cannotRead(error_number);
  return loadConfigString(content, path);
}

ConfigLoadResult makeZeroConfig(std::string_view upstream_url, std::string_view listen_address,
                                std::string_view admin_address, LogFormat log_format) {
  std::vector<ConfigError> errors;
  Config config;
  config.logging.format = log_format;
  std::string why;
  if (admin_address == "off") {
    config.admin.address.reset();
  } else if (!admin_address.empty()) {
    if (auto address = parseSocketAddress(admin_address, &why); address && address->isUnix()) {
      errors.push_back({"--admin", 0, 0, "the admin endpoints listen on TCP only"});
    } else if (address) {
      config.admin.address = std::move(*address);
    } else {
      errors.push_back(
          {"--admin", 0, 0, "invalid address '" + std::string(admin_address) + "': " + why});
    }
  }

  UpstreamConfig upstream;
  upstream.name = std::string(kZeroConfigUpstreamName);
  if (auto url = parseUpstreamUrl(upstream_url, &why)) {
    upstream.url = std::move(*url);
  } else {
    errors.push_back(
        {"--upstream", 0, 0, "invalid upstream URL '" + std::string(upstream_url) + "': " + why});
  }

  ListenerConfig listener;
  listener.name = std::string(kZeroConfigListenerName);
  listener.upstream = upstream.name;
  const std::string_view listen = listen_address.empty() ? kDefaultListenAddress : listen_address;
  if (auto address = parseSocketAddress(listen, &why)) {
    listener.address = std::move(*address);
    if (config.admin.address && bindConflict(*config.admin.address, listener.address)) {
      errors.push_back({"--listen", 0, 0,
                        listener.address.text() + " is the admin address; choose another port"});
    }
  } else {
    errors.push_back({"--listen", 0, 0, "invalid address '" + std::string(listen) + "': " + why});
  }

  if (!errors.empty()) return {nullptr, std::move(errors)};
  config.listeners.push_back(std::move(listener));
  config.upstreams.push_back(std::move(upstream));
  return {std::make_shared<const Config>(std::move(config)), {}};
}

}  // namespace viscount
