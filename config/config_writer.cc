// toYaml and toJson (declared in config_loader.h): the inverse of loading. Both are rendered from
// one tree so that --print-config and the admin /config endpoint can never disagree about what a
// setting is called or what it holds.

#include <yaml-cpp/yaml.h>

#include <cstdio>

#include "config/config_loader.h"
#include "config/duration.h"

namespace viscount {
namespace {

using Tree = nlohmann::ordered_json;

enum class SizeStyle {
  kUnits,  // "60KiB": what a person writes in YAML
  kBytes,  // 61440: what a tool wants to compare
};

class TreeBuilder {
 public:
  explicit TreeBuilder(SizeStyle sizes) : sizes_(sizes) {}

  Tree build(const Config& config) const {
    Tree root;
    root["workers"] = config.workers == 0 ? Tree("auto") : Tree(config.workers);
    root["drain_timeout"] = formatDuration(config.drain_timeout);
    root["watch_config"] = config.watch_config;
    root["io_uring"] = config.io_uring;
    root["listeners"] = Tree::array();
    for (const auto& listener : config.listeners)
      root["listeners"].push_back(build(listener));
    root["upstreams"] = Tree::array();
    for (const auto& upstream : config.upstreams)
      root["upstreams"].push_back(build(upstream));
    root["context"] = build(config.context);
    root["logging"] = build(config.logging);
    root["admin"]["address"] = config.admin.address ? config.admin.address->text() : "off";
    root["admin"]["control_from"] = Tree::array();
    for (const auto& cidr : config.admin.control_from)
      root["admin"]["control_from"].push_back(cidr.text());
    return root;
  }

 private:
  Tree size(uint64_t bytes) const {
    return sizes_ == SizeStyle::kUnits ? Tree(formatSize(bytes)) : Tree(bytes);
  }

  Tree build(const ListenerConfig& listener) const {
    Tree node;
    node["name"] = listener.name;
    node["address"] = listener.address.text();
    if (listener.address.isUnix()) {
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o", listener.socket_mode);
      node["socket_mode"] = std::string(mode);
    }
    node["upstream"] = listener.upstream;
    node["http2"] = listener.http2;
    node["upgrades"] = Tree::array();
    for (const std::string& token : listener.upgrades)
      node["upgrades"].push_back(token);
    if (listener.tls) {
      node["tls"]["certificate"] = listener.tls->certificate;
      node["tls"]["private_key"] = listener.tls->private_key;
      if (!listener.tls->client_ca.empty()) node["tls"]["client_ca"] = listener.tls->client_ca;
      node["tls"]["user_id_from_certificate"] = listener.tls->user_id_from_certificate;
    }
    node["timeouts"]["request_headers"] = formatDuration(listener.timeouts.request_headers);
    node["timeouts"]["idle"] = formatDuration(listener.timeouts.idle);
    node["timeouts"]["tunnel_idle"] = formatDuration(listener.timeouts.tunnel_idle);
    node["limits"]["max_connections"] = listener.limits.max_connections;
    node["limits"]["max_tunnels"] = listener.limits.max_tunnels;
    node["limits"]["max_request_headers_size"] = size(listener.limits.max_request_headers_size);
    node["limits"]["max_request_headers_count"] = listener.limits.max_request_headers_count;
    node["limits"]["max_request_body_size"] = size(listener.limits.max_request_body_size);
    return node;
  }

  Tree build(const UpstreamConfig& upstream) const {
    Tree node;
    node["name"] = upstream.name;
    node["url"] = upstream.url.text;
    node["timeouts"]["connect"] = formatDuration(upstream.timeouts.connect);
    node["timeouts"]["request"] = formatDuration(upstream.timeouts.request);
    node["timeouts"]["deadline_header"] =
        upstream.timeouts.deadline_header.empty() ? "off" : upstream.timeouts.deadline_header;
    node["timeouts"]["grpc_no_deadline"] =
        upstream.timeouts.grpc_unbounded ? "unbounded" : "request";
    node["pool"]["size"] = upstream.pool.size;
    node["pool"]["max_overflow"] = upstream.pool.max_overflow;
    node["pool"]["wait_timeout"] = formatDuration(upstream.pool.wait_timeout);
    node["pool"]["pre_ping"] = upstream.pool.pre_ping;
    node["pool"]["recycle"] = formatDuration(upstream.pool.recycle);
    node["pool"]["idle_timeout"] = formatDuration(upstream.pool.idle_timeout);
    node["limits"]["max_concurrent_requests"] = upstream.limits.max_concurrent_requests;
    node["limits"]["max_queued_requests"] = upstream.limits.max_queued_requests;
    node["limits"]["queue_timeout"] = formatDuration(upstream.limits.queue_timeout);
    node["limits"]["max_informational_responses"] = upstream.limits.max_informational_responses;
    node["limits"]["max_response_headers_count"] = upstream.limits.max_response_headers_count;
    node["retries"]["attempts"] = upstream.retries.attempts;
    if (upstream.url.scheme == UpstreamScheme::kHttps) {
      node["tls"]["verify"] = upstream.tls.verify;
      // Unset paths and names are left out: their defaults are "the system store", "the URL's
      // host" and "no client certificate", which an empty string would not say.
      const auto optional = [&node](const char* key, const std::string& value) {
        if (!value.empty()) node["tls"][key] = value;
      };
      optional("ca_file", upstream.tls.ca_file);
      optional("server_name", upstream.tls.server_name);
      optional("certificate", upstream.tls.certificate);
      optional("private_key", upstream.tls.private_key);
    }
    return node;
  }

  static Tree build(const ContextConfig& context) {
    Tree node;
    node["request_id"]["header"] = context.request_id.header;
    node["request_id"]["preserve_incoming"] = context.request_id.preserve_incoming;
    node["request_id"]["generate"] = toString(context.request_id.generate);
    node["correlation_id"]["header"] = context.correlation_id.header;
    node["user_id"]["header"] = context.user_id.header;
    node["user_id"]["pattern"] = context.user_id.pattern;
    node["trace_context"] = context.trace_context;
    node["trusted_sources"] = Tree::array();
    for (const auto& cidr : context.trusted_sources)
      node["trusted_sources"].push_back(cidr.text());
    if (context.trust_unix_clients) node["trusted_sources"].push_back(std::string("unix"));
    node["forwarded"] = Tree::array();
    if (context.forwarded.x_real_ip) node["forwarded"].push_back("x-real-ip");
    if (context.forwarded.forwarded) node["forwarded"].push_back("forwarded");
    node["id_pattern"] = context.id_pattern;
    node["echo_in_response"] = context.echo_in_response;
    return node;
  }

  static Tree build(const LoggingConfig& logging) {
    Tree node;
    node["access_log"] = logging.access_log;
    node["format"] = toString(logging.format);
    node["level"] = toString(logging.level);
    node["buffer"] = logging.buffer;
    node["redact_query"] = Tree::array();
    for (const auto& name : logging.redact_query)
      node["redact_query"].push_back(name);
    node["sample"]["success"] = logging.sample_success;
    node["headers"]["request"] = Tree::array();
    for (const auto& name : logging.request_headers)
      node["headers"]["request"].push_back(name);
    node["headers"]["response"] = Tree::array();
    for (const auto& name : logging.response_headers)
      node["headers"]["response"].push_back(name);
    node["allow_sensitive_headers"] = logging.allow_sensitive_headers;
    node["trail"]["slow"] =
        logging.trail_slow.count() == 0 ? std::string("off") : formatDuration(logging.trail_slow);
    return node;
  }

  SizeStyle sizes_;
};

void emit(YAML::Emitter& out, const Tree& node) {
  switch (node.type()) {
    case Tree::value_t::object:
      out << YAML::BeginMap;
      for (const auto& [key, value] : node.items()) {
        out << YAML::Key << key << YAML::Value;
        emit(out, value);
      }
      out << YAML::EndMap;
      break;
    case Tree::value_t::array:
      // Block style, except that an empty list must be written as [] to stay a list.
      out << (node.empty() ? YAML::Flow : YAML::Block) << YAML::BeginSeq;
      for (const auto& item : node)
        emit(out, item);
      out << YAML::EndSeq;
      break;
    case Tree::value_t::string:
      out << node.get_ref<const std::string&>();
      break;
    case Tree::value_t::boolean:
      out << node.get<bool>();
      break;
    case Tree::value_t::number_unsigned:
      out << node.get<uint64_t>();
      break;
    case Tree::value_t::number_integer:
      out << node.get<int64_t>();
      break;
    case Tree::value_t::number_float:
      // nlohmann's shortest round-trip text (0.1, not 0.10000000000000001), which YAML reads back.
      out << node.dump();
      break;
    default:
      out << YAML::Null;
      break;
  }
}

}  // namespace

std::string toYaml(const Config& config) {
  YAML::Emitter out;
  emit(out, TreeBuilder(SizeStyle::kUnits).build(config));
  return std::string(out.c_str()) + "\n";
}

nlohmann::json toJson(const Config& config) {
  return nlohmann::json(TreeBuilder(SizeStyle::kBytes).build(config));
}

std::string toJsonText(const Config& config) {
  return toJson(config).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace viscount
