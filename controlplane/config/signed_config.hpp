// Signed remote configuration (apply_signed_config, issue #17): a bundle carries a complete
// configuration file (YAML), a serial, the name of the key that signed it and a detached Ed25519
// signature. Pure logic, no I/O: parse a bundle, check its key, signature and serial, load its
// configuration against the local one's trust anchors; and the state kept in the state directory
// (which configuration runs, which ran before, the highest serial applied). The daemon's side is
// ControlPlane::apply_signed_config; docs/api.md has the format.
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config.hpp"

namespace tp {

using Json = nlohmann::json;

// A refusal: `code` is the API's error code (malformed_bundle, unknown_key, bad_signature,
// replayed_serial, invalid_config, forbidden_change), the message says why.
struct SignedConfigRefusal : std::runtime_error {
  SignedConfigRefusal(std::string c, const std::string& why)
      : std::runtime_error(why), code(std::move(c)) {}
  std::string code;
};

struct SignedBundle {
  std::string config;  // the YAML text, as signed
  uint64_t serial = 0;
  std::string key;  // a trusted key's name
  std::array<uint8_t, 64> signature{};
  bool operator==(const SignedBundle&) const = default;
  // "signed serial 7 (key oem)": what status and the log say runs.
  std::string describe() const;
};

// What the signature covers: "tetherpath-signed-config-v1" NUL serial (decimal) NUL key NUL
// config. The serial and the key name are bound to the text: neither can be swapped.
std::string signed_message(uint64_t serial, const std::string& key, const std::string& config);

// The API's `bundle`: an object, or its JSON text (a file as tetherctl read it). Throws
// malformed_bundle naming what is missing or wrong (a truncated file is not JSON).
SignedBundle parse_bundle(const Json& bundle);
Json bundle_json(const SignedBundle& b);  // parse_bundle's input again

// The key is trusted, the signature is its, and the serial is above `last_serial` (when given).
// Throws unknown_key, bad_signature or replayed_serial, checked in that order.
void verify_bundle(const SignedBundle& b, const std::vector<conf::TrustedKey>& trusted,
                   std::optional<uint64_t> last_serial);

// The bundle's configuration, loaded and checked against the local one: it may not change the
// trust anchors (signed_config) or the state directory. Throws invalid_config (with the loader's
// line and key) or forbidden_change.
conf::Config load_bundle_config(const SignedBundle& b, const conf::Config& local);

// What the state directory keeps (this file in it), written whole after each change.
inline constexpr const char* kSignedStateFile = "signed_config.json";
struct SignedState {
  uint64_t last_serial = 0;              // the highest serial applied; 0: none yet
  std::optional<SignedBundle> running;   // none: the local file runs
  bool restorable = false;               // restore_config has somewhere to go back to...
  std::optional<SignedBundle> previous;  // ...this bundle, or (none) the local file
  bool operator==(const SignedState&) const = default;
};
Json state_json(const SignedState& s);
// Throws std::runtime_error saying what is wrong with a saved state.
SignedState parse_state(const Json& j);

// A bundle applied: it runs, what ran before is kept for restore_config, its serial is the new
// high-water mark. A restore: the previous one runs, nothing is left to go back to, the
// high-water mark stays (an old bundle stays refused).
SignedState after_apply(const SignedState& s, const SignedBundle& b);
SignedState after_restore(const SignedState& s);

}  // namespace tp
