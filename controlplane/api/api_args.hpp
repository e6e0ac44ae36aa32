// The management API's argument checks, shared by its operations: every malformed argument is an
// ApiError with the key and what was expected, which OffloadApi::handle turns into an error reply.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "ip_addr.hpp"

namespace tp::api {

using Json = nlohmann::json;

struct ApiError : std::runtime_error {
  ApiError(std::string c, const std::string& message) : std::runtime_error(message), code(c) {}
  std::string code;
};

// Who is calling (the socket's SO_PEERCRED) and what the configuration lets it do.
// Who sent a request. A default one may only read: rights are given, never assumed.
struct Caller {
  uint32_t uid = 0, gid = 0;
  int32_t pid = 0;
  bool control = false;    // may change state; else read only (api.control_group)
  bool emergency = false;  // may start or end an emergency (root, api.emergency_group)
  static Caller root() { return {0, 0, 0, true, true}; }
};

[[noreturn]] inline void illegal_argument(const std::string& why) {
  throw ApiError("illegal_argument", why);
}

inline Json ok(Json extra = Json::object()) {
  extra["ok"] = true;
  return extra;
}

// Names, addresses and prefixes reach C parsers and the kernel, which stop at a NUL: with one
// inside, what is checked would not be what is used ("wifi0\u0000" passing as another port's
// name, "10.0.0.0\u0000/8" as 10.0.0.0/8). No control character has a place in any of them.
inline std::string checked_text(const Json& v, const char* key) {
  std::string s = v.get<std::string>();
  for (const char c : s)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      illegal_argument(std::string(key) + ": control characters are not allowed");
  return s;
}

// A string argument: absent or null is empty; any other type is an error.
inline std::string string_arg(const Json& req, const char* key) {
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) return "";
  if (!it->is_string()) illegal_argument(std::string(key) + ": expected a string");
  return checked_text(*it, key);
}

inline bool bool_arg(const Json& req, const char* key, bool fallback) {
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) return fallback;
  if (!it->is_boolean()) illegal_argument(std::string(key) + ": expected true or false");
  return it->get<bool>();
}

inline bool required_bool_arg(const Json& req, const char* key) {
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) illegal_argument(std::string(key) + ": required");
  return bool_arg(req, key, false);
}

inline uint32_t uint_arg(const Json& req, const char* key, uint32_t min, uint32_t max,
                         uint32_t fallback) {
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) return fallback;
  // JSON's non-negative integers parse as unsigned; anything else is out of range.
  const bool fits =
      it->is_number_unsigned() && it->get<uint64_t>() >= min && it->get<uint64_t>() <= max;
  if (!fits)
    illegal_argument(std::string(key) + ": expected an integer from " + std::to_string(min) +
                     " to " + std::to_string(max));
  return static_cast<uint32_t>(it->get<uint64_t>());
}

template <class E>
E choice_arg(const Json& req, const char* key, const std::vector<std::pair<const char*, E>>& names,
             E fallback) {
  const std::string s = string_arg(req, key);
  if (s.empty()) return fallback;
  std::string have;
  for (const auto& [n, v] : names) {
    if (s == n) return v;
    have += have.empty() ? n : std::string(", ") + n;
  }
  illegal_argument(std::string(key) + ": expected one of " + have + ", got '" + s + "'");
}

inline std::vector<std::string> string_list_arg(const Json& req, const char* key) {
  std::vector<std::string> out;
  auto it = req.find(key);
  if (it == req.end() || it->is_null()) return out;
  if (!it->is_array()) illegal_argument(std::string(key) + ": expected a list of strings");
  for (const Json& e : *it) {
    if (!e.is_string()) illegal_argument(std::string(key) + ": expected a list of strings");
    out.push_back(checked_text(e, key));
  }
  return out;
}

inline uint64_t bytes_arg(const Json& req, const char* key) {
  auto it = req.find(key);
  if (it == req.end()) illegal_argument(std::string("missing '") + key + "'");
  if (!it->is_number_integer()) illegal_argument(std::string(key) + ": expected an integer");
  if (it->is_number_unsigned()) return it->get<uint64_t>();
  const int64_t v = it->get<int64_t>();
  if (v < 0) illegal_argument(std::string(key) + ": expected bytes >= 0, got " + std::to_string(v));
  return static_cast<uint64_t>(v);
}

inline IpAddr address_arg(const std::string& text, int family, const char* key) {
  auto a = IpAddr::parse(text);
  if (!a || (family && a->family != family))
    illegal_argument(std::string(key) + ": expected an " +
                     (family == AF_INET    ? "IPv4 "
                      : family == AF_INET6 ? "IPv6 "
                                           : "IP ") +
                     "address, got '" + text + "'");
  return *a;
}

inline Prefix prefix_arg(const std::string& text) {
  auto p = Prefix::parse(text);
  if (!p) illegal_argument("expected an address/length prefix, got '" + text + "'");
  return *p;
}

}  // namespace tp::api
