// The YAML reader the configuration's sections share: a node with the dotted path that leads to
// it, so that every error names the file, line, column and key and says what was expected.
#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"

namespace tp::conf {

struct Field {
  YAML::Node node;  // a handle: cheap to copy
  std::string key;
  const std::string& file;

  [[noreturn]] void fail(const std::string& what) const {
    const YAML::Mark m = node.Mark();
    std::ostringstream s;
    s << file;
    if (!m.is_null()) s << ':' << m.line + 1 << ':' << m.column + 1;
    s << ": ";
    if (!key.empty()) s << key << ": ";
    s << what;
    throw ConfigError(s.str());
  }

  std::string scalar(const char* expected) const {
    if (!node.IsScalar()) fail(std::string("expected ") + expected);
    return node.Scalar();
  }

  std::string string() const { return scalar("a string"); }

  template <class T>
  T integer(T min, T max) const {
    const std::string s = scalar("an integer");
    long long v = 0;
    std::size_t used = 0;
    try {
      v = std::stoll(s, &used, 0);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != s.size() || s.empty()) fail("expected an integer, got '" + s + "'");
    if (v < static_cast<long long>(min) || v > static_cast<long long>(max))
      fail("expected an integer from " + std::to_string(min) + " to " + std::to_string(max) +
           ", got " + s);
    return static_cast<T>(v);
  }

  template <class E>
  E choice(std::initializer_list<std::pair<const char*, E>> options) const {
    const std::string s = scalar("a string");
    std::string names;
    for (const auto& [name, value] : options) {
      if (s == name) return value;
      names += names.empty() ? name : std::string(", ") + name;
    }
    fail("expected one of " + names + ", got '" + s + "'");
  }

  // Every key present must be a known one: a typo is an error, not a silent default.
  void only_keys(std::initializer_list<const char*> known) const {
    if (!node.IsMap()) fail("expected a mapping");
    for (const auto& kv : node) {
      const std::string k = kv.first.as<std::string>();
      bool ok = false;
      for (const char* n : known) ok = ok || k == n;
      if (!ok) {
        std::string list;
        for (const char* n : known) list += list.empty() ? n : std::string(", ") + n;
        Field{kv.first, key.empty() ? k : key + "." + k, file}.fail("unknown key (known: " + list +
                                                                    ")");
      }
    }
  }

  std::optional<Field> child(const char* name) const {
    YAML::Node c = node[name];
    if (!c.IsDefined() || c.IsNull()) return std::nullopt;
    return Field{c, key.empty() ? name : key + "." + name, file};
  }

  Field element(std::size_t i) const {
    return Field{node[i], key + "[" + std::to_string(i) + "]", file};
  }

  // Calls f(element) for each element of a list (an absent key is an empty list).
  template <class F>
  void each(F&& f) const {
    if (!node.IsSequence()) fail("expected a list");
    for (std::size_t i = 0; i < node.size(); ++i) f(element(i));
  }

  IpAddr address(int family = 0) const {
    const std::string s = scalar("an IP address");
    auto a = IpAddr::parse(s);
    if (!a) fail("expected an IP address, got '" + s + "'");
    if (family && a->family != family)
      fail(std::string("expected an ") + (family == AF_INET ? "IPv4" : "IPv6") + " address, got '" +
           s + "'");
    return *a;
  }

  Prefix prefix() const {
    const std::string s = scalar("an address/length prefix");
    auto p = Prefix::parse(s);
    if (!p) fail("expected an address/length prefix like 192.168.50.0/24, got '" + s + "'");
    return *p;
  }

  bool boolean() const { return choice<bool>({{"true", true}, {"false", false}}); }

  // The name of a configured port with the given role.
  std::string port_name(const std::vector<PortConfig>& ports, Role role) const {
    const std::string s = string();
    for (const PortConfig& p : ports) {
      if (p.name != s) continue;
      if (p.role != role)
        fail("port '" + s + "' is not " + (role == Role::upstream ? "an" : "a") + " " +
             to_string(role) + " port");
      return s;
    }
    std::string names;
    for (const PortConfig& p : ports)
      if (p.role == role) names += names.empty() ? p.name : ", " + p.name;
    fail(std::string("expected the name of ") + (role == Role::upstream ? "an " : "a ") +
         to_string(role) + " port (" + names + "), got '" + s + "'");
  }
};

inline std::array<uint8_t, 6> parse_mac(const Field& f) {
  const std::string s = f.string();
  const auto mac = parse_mac_text(s);
  if (!mac) f.fail("expected a MAC address like 02:00:00:00:00:01, got '" + s + "'");
  if ((*mac)[0] & 1) f.fail("expected a unicast MAC address, got '" + s + "'");
  return *mac;
}

template <class E>
E named_choice(const Field& f, const std::vector<std::pair<const char*, E>>& names) {
  const std::string s = f.string();
  for (const auto& [n, v] : names)
    if (s == n) return v;
  std::string have;
  for (const auto& [n, v] : names) have += have.empty() ? n : std::string(", ") + n;
  f.fail("expected one of " + have + ", got '" + s + "'");
}

// Sections parsed in files of their own.
std::vector<SessionConfig> parse_sessions(const Field& f, const Config& c);
SignedConfigConfig parse_signed_config(const Field& f);

}  // namespace tp::conf
