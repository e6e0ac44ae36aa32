#include "signed_config.hpp"

#include <sodium.h>

#include <algorithm>
#include <limits>

namespace tp {
namespace {

[[noreturn]] void malformed(const std::string& why) {
  throw SignedConfigRefusal("malformed_bundle", "bundle: " + why);
}

std::string base64(const uint8_t* bytes, std::size_t n) {
  std::string out(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), bytes, n, sodium_base64_VARIANT_ORIGINAL);
  out.pop_back();  // the terminating NUL
  return out;
}

// Exactly out.size() bytes, strict base64 (padding included), or false.
template <std::size_t N>
bool unbase64(const std::string& text, std::array<uint8_t, N>& out) {
  std::size_t len = 0;
  return sodium_base642bin(out.data(), out.size(), text.data(), text.size(), nullptr, &len, nullptr,
                           sodium_base64_VARIANT_ORIGINAL) == 0 &&
         len == N;
}

}  // namespace

std::string SignedBundle::describe() const {
  return "signed serial " + std::to_string(serial) + " (key " + key + ")";
}

std::string signed_message(uint64_t serial, const std::string& key, const std::string& config) {
  std::string m = "tetherpath-signed-config-v1";
  m += '\0';
  m += std::to_string(serial);
  m += '\0';
  m += key;
  m += '\0';
  m += config;
  return m;
}

SignedBundle parse_bundle(const Json& bundle) {
  Json j = bundle;
  if (bundle.is_string()) {
    j = Json::parse(bundle.get<std::string>(), nullptr, false);
    if (j.is_discarded()) malformed("not JSON (a truncated file?)");
  }
  if (!j.is_object()) malformed("expected an object with config, serial, key and signature");
  for (const auto& [k, v] : j.items())
    if (k != "config" && k != "serial" && k != "key" && k != "signature")
      malformed("unknown field '" + k + "' (known: config, serial, key, signature)");
  auto field = [&](const char* name) -> const Json& {
    const auto it = j.find(name);
    if (it == j.end() || it->is_null()) malformed(std::string("missing '") + name + "'");
    return *it;
  };
  SignedBundle b;
  const Json& config = field("config");
  if (!config.is_string() || config.get<std::string>().empty())
    malformed("config: expected the configuration's YAML text");
  b.config = config.get<std::string>();
  const Json& serial = field("serial");
  // Parsed text holds a positive integer as unsigned, a built object may hold it as signed.
  if (!serial.is_number_integer() || (!serial.is_number_unsigned() && serial.get<int64_t>() < 1) ||
      serial.get<uint64_t>() == 0)
    malformed("serial: expected an integer from 1 to " +
              std::to_string(std::numeric_limits<uint64_t>::max()));
  b.serial = serial.get<uint64_t>();
  const Json& key = field("key");
  if (!key.is_string() || !conf::valid_uplink_name(key.get<std::string>()))
    malformed("key: expected a key's name (1 to 32 of A-Z a-z 0-9 _ -)");
  b.key = key.get<std::string>();
  const Json& sig = field("signature");
  if (!sig.is_string() || !unbase64(sig.get<std::string>(), b.signature))
    malformed("signature: expected the base64 of a 64-byte Ed25519 signature");
  return b;
}

Json bundle_json(const SignedBundle& b) {
  return Json{{"config", b.config},
              {"serial", b.serial},
              {"key", b.key},
              {"signature", base64(b.signature.data(), b.signature.size())}};
}

void verify_bundle(const SignedBundle& b, const std::vector<conf::TrustedKey>& trusted,
                   std::optional<uint64_t> last_serial) {
  const auto key = std::find_if(trusted.begin(), trusted.end(),
                                [&](const conf::TrustedKey& k) { return k.name == b.key; });
  if (key == trusted.end()) {
    std::string names;
    for (const auto& k : trusted) names += (names.empty() ? "" : ", ") + k.name;
    throw SignedConfigRefusal(
        "unknown_key",
        "key '" + b.key + "' is not among signed_config.trusted_keys (" + names + ")");
  }
  if (sodium_init() < 0) throw std::runtime_error("libsodium cannot be initialised");
  const std::string m = signed_message(b.serial, b.key, b.config);
  if (crypto_sign_verify_detached(b.signature.data(), reinterpret_cast<const uint8_t*>(m.data()),
                                  m.size(), key->public_key.data()) != 0)
    throw SignedConfigRefusal("bad_signature", "the signature is not key '" + b.key +
                                                   "''s over this serial and configuration");
  if (last_serial && b.serial <= *last_serial)
    throw SignedConfigRefusal("replayed_serial", "serial " + std::to_string(b.serial) +
                                                     " is not above the last applied, " +
                                                     std::to_string(*last_serial));
}

conf::Config load_bundle_config(const SignedBundle& b, const conf::Config& local) {
  conf::Config c;
  try {
    c = conf::load_string(b.config, b.describe());
  } catch (const conf::ConfigError& e) {
    throw SignedConfigRefusal("invalid_config", e.what());
  }
  // The trust anchors and where the serial is kept are the box's own: a bundle that could change
  // them could accept any later bundle, or forget the serials it replaced.
  if (c.signed_config != local.signed_config)
    throw SignedConfigRefusal("forbidden_change", b.describe() +
                                                      ": signed_config differs from the local "
                                                      "file's (a bundle may not change its own "
                                                      "trust anchors)");
  if (c.state_dir != local.state_dir)
    throw SignedConfigRefusal(
        "forbidden_change",
        b.describe() + ": state_dir differs from the local file's (" + local.state_dir + ")");
  return c;
}

Json state_json(const SignedState& s) {
  Json j{{"version", 1},
         {"last_serial", s.last_serial},
         {"running", s.running ? bundle_json(*s.running) : Json(nullptr)}};
  if (s.restorable) j["previous"] = s.previous ? bundle_json(*s.previous) : Json("local");
  return j;
}

SignedState parse_state(const Json& j) {
  if (!j.is_object() || j.value("version", Json()) != 1)
    throw std::runtime_error("not a version 1 state");
  SignedState s;
  const auto last = j.find("last_serial");
  if (last == j.end() || !last->is_number_unsigned())
    throw std::runtime_error("last_serial: expected an integer");
  s.last_serial = last->get<uint64_t>();
  try {
    if (const auto r = j.find("running"); r != j.end() && !r->is_null())
      s.running = parse_bundle(*r);
    if (const auto p = j.find("previous"); p != j.end()) {
      s.restorable = true;
      if (*p != "local") s.previous = parse_bundle(*p);
    }
  } catch (const SignedConfigRefusal& e) {
    throw std::runtime_error(e.what());
  }
  return s;
}

SignedState after_apply(const SignedState& s, const SignedBundle& b) {
  SignedState n;
  n.last_serial = std::max(s.last_serial, b.serial);
  n.running = b;
  n.restorable = true;
  n.previous = s.running;
  return n;
}

SignedState after_restore(const SignedState& s) {
  SignedState n;
  n.last_serial = s.last_serial;
  n.running = s.previous;
  return n;
}

}  // namespace tp
