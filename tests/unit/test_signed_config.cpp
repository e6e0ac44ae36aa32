// Signed remote configuration: bundles made with real Ed25519 keys (libsodium) are accepted or
// refused with their reason; the trust anchors' section of the YAML; the state kept across
// restarts (tests/unit/test_offload_api.cpp: a caller who may only read cannot apply one).
#include <gtest/gtest.h>
#include <sodium.h>

#include "signed_config.hpp"

namespace tp {
namespace {

struct Key {
  std::array<uint8_t, 32> pk{};
  std::array<uint8_t, 64> sk{};
  Key() {
    EXPECT_GE(sodium_init(), 0);
    crypto_sign_keypair(pk.data(), sk.data());
  }
  std::string public_base64() const {
    char out[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(out, sizeof out, pk.data(), pk.size(), sodium_base64_VARIANT_ORIGINAL);
    return out;
  }
  std::array<uint8_t, 64> sign(const std::string& message) const {
    std::array<uint8_t, 64> sig{};
    crypto_sign_detached(sig.data(), nullptr, reinterpret_cast<const uint8_t*>(message.data()),
                         message.size(), sk.data());
    return sig;
  }
};

// A kernel-engine box whose keepalive interval tells configurations apart.
std::string yaml(const Key& trusted, unsigned keepalive_s, const std::string& extra = "") {
  return "ports:\n"
         "  - {name: modem0, role: upstream}\n"
         "  - {name: wifi0, role: downstream}\n"
         "dataplane: {engine: kernel}\n"
         "offload: {keepalive_interval_s: " +
         std::to_string(keepalive_s) +
         "}\n"
         "state_dir: /var/lib/tp-test\n"
         "signed_config:\n"
         "  trusted_keys:\n"
         "    - {name: oem, public_key: \"" +
         trusted.public_base64() + "\"}\n" + extra;
}

Json bundle(const Key& signer, const std::string& config, uint64_t serial,
            const std::string& key = "oem") {
  SignedBundle b{config, serial, key, signer.sign(signed_message(serial, key, config))};
  return bundle_json(b);
}

std::string refusal(const Json& j, const std::vector<conf::TrustedKey>& trusted,
                    std::optional<uint64_t> last) {
  try {
    verify_bundle(parse_bundle(j), trusted, last);
  } catch (const SignedConfigRefusal& r) {
    return r.code;
  }
  return "";
}

class SignedConfig : public ::testing::Test {
 protected:
  Key oem, other;
  conf::Config local = conf::load_string(yaml(oem, 60), "local.yaml");
  const std::vector<conf::TrustedKey>& trusted() const { return local.signed_config.trusted_keys; }
};

TEST_F(SignedConfig, TrustedKeysParse) {
  ASSERT_EQ(trusted().size(), 1u);
  EXPECT_EQ(trusted()[0].name, "oem");
  EXPECT_EQ(trusted()[0].public_key, oem.pk);
}

TEST_F(SignedConfig, BadTrustedKeyNamesFileLineAndKey) {
  const std::string base =
      "ports:\n  - {name: modem0, role: upstream}\ndataplane: {engine: kernel}\n";
  const std::pair<std::string, std::string> cases[] = {
      {"signed_config:\n  trusted_keys:\n    - {name: oem, public_key: \"AAAA\"}\n",
       "bad.yaml:6:31: signed_config.trusted_keys[0].public_key: expected the base64 of a raw "
       "32-byte Ed25519 public key"},
      {"signed_config:\n  trusted_keys:\n    - {name: \"o m\", public_key: \"" +
           oem.public_base64() + "\"}\n",
       "bad.yaml:6:14: signed_config.trusted_keys[0].name: expected 1 to 32 of A-Z a-z 0-9 _ -, "
       "got 'o m'"},
      {"signed_config:\n  trusted_keys:\n    - {public_key: \"" + oem.public_base64() + "\"}\n",
       "bad.yaml:6:7: signed_config.trusted_keys[0]: missing key 'name'"},
      {"signed_config:\n  keys: []\n",
       "bad.yaml:5:3: signed_config.keys: unknown key (known: trusted_keys)"},
      {"signed_config:\n  trusted_keys:\n    - {name: a, public_key: \"" + oem.public_base64() +
           "\"}\n    - {name: a, public_key: \"" + other.public_base64() + "\"}\n",
       "bad.yaml:7:14: signed_config.trusted_keys[1].name: duplicate key name 'a'"},
  };
  for (const auto& [section, message] : cases) {
    SCOPED_TRACE(section);
    try {
      conf::load_string(base + section, "bad.yaml");
      ADD_FAILURE() << "accepted";
    } catch (const conf::ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), message);
    }
  }
}

TEST_F(SignedConfig, GoodBundleVerifiesAndLoads) {
  const std::string text = yaml(oem, 20);
  const Json j = bundle(oem, text, 7);
  EXPECT_EQ(refusal(j, trusted(), 6), "");
  EXPECT_EQ(refusal(j, trusted(), std::nullopt), "");
  const SignedBundle b = parse_bundle(j);
  EXPECT_EQ(b.serial, 7u);
  EXPECT_EQ(b.config, text);
  // As a file's text too (tetherctl sends what it read).
  EXPECT_EQ(parse_bundle(Json(j.dump())), b);
  const conf::Config c = load_bundle_config(b, local);
  EXPECT_EQ(c.offload.keepalive_interval_s, 20u);
  EXPECT_EQ(c.source, "signed serial 7 (key oem)");
  EXPECT_EQ(conf::live_change_refusal(local, c), "");
}

TEST_F(SignedConfig, EachBadBundleHasItsReason) {
  const std::string text = yaml(oem, 20);
  EXPECT_EQ(refusal(bundle(other, text, 7), trusted(), 0), "bad_signature");
  EXPECT_EQ(refusal(bundle(oem, text, 7, "rental"), trusted(), 0), "unknown_key");
  EXPECT_EQ(refusal(bundle(oem, text, 7), trusted(), 7), "replayed_serial");
  EXPECT_EQ(refusal(bundle(oem, text, 3), trusted(), 7), "replayed_serial");
  // Tampered text, a serial or a key name swapped: the signature covers all three.
  Json tampered = bundle(oem, text, 7);
  tampered["config"] = yaml(oem, 30);
  EXPECT_EQ(refusal(tampered, trusted(), 0), "bad_signature");
  Json swapped = bundle(oem, text, 7);
  swapped["serial"] = 8;
  EXPECT_EQ(refusal(swapped, trusted(), 0), "bad_signature");
}

TEST_F(SignedConfig, KeyNameIsBoundToTheSignature) {
  // Two trusted keys: a bundle signed by one cannot be passed off as the other's.
  std::vector<conf::TrustedKey> keys = trusted();
  keys.push_back({"oem2", oem.pk});
  const std::string text = yaml(oem, 20);
  Json renamed = bundle(oem, text, 7, "oem");
  renamed["key"] = "oem2";
  EXPECT_EQ(refusal(renamed, keys, 0), "bad_signature");
}

TEST_F(SignedConfig, TruncatedOrMalformedBundles) {
  const std::string whole = bundle(oem, yaml(oem, 20), 7).dump();
  for (std::size_t len : {std::size_t{0}, std::size_t{1}, whole.size() / 2, whole.size() - 1}) {
    SCOPED_TRACE(len);
    EXPECT_EQ(refusal(Json(whole.substr(0, len)), trusted(), 0), "malformed_bundle");
  }
  Json j = bundle(oem, yaml(oem, 20), 7);
  const std::string sig = j["signature"];
  for (auto [field, value] : std::initializer_list<std::pair<const char*, Json>>{
           {"signature", sig.substr(0, sig.size() / 2)},
           {"signature", nullptr},
           {"serial", 0},
           {"serial", -3},
           {"serial", "7"},
           {"serial", 7.5},
           {"key", ""},
           {"config", ""},
           {"config", 5},
           {"extra", 1}}) {
    SCOPED_TRACE(std::string(field) + " = " + value.dump());
    Json bad = j;
    bad[field] = value;
    EXPECT_EQ(refusal(bad, trusted(), 0), "malformed_bundle");
  }
  EXPECT_EQ(refusal(Json::array(), trusted(), 0), "malformed_bundle");
}

TEST_F(SignedConfig, ValidSignatureOverAnInvalidConfiguration) {
  auto code = [&](const std::string& text) {
    try {
      load_bundle_config(parse_bundle(bundle(oem, text, 7)), local);
    } catch (const SignedConfigRefusal& r) {
      return r.code + ": " + r.what();
    }
    return std::string();
  };
  EXPECT_EQ(code(yaml(oem, 20, "bogus: 1\n")).substr(0, 54),
            "invalid_config: signed serial 7 (key oem):10:1: bogus:");
  // It may not change its own trust anchors, nor where the serial is kept.
  EXPECT_EQ(code(yaml(other, 20)).substr(0, 33), "forbidden_change: signed serial 7");
  std::string moved = yaml(oem, 20);
  moved.replace(moved.find("/var/lib/tp-test"), 16, "/var/lib/elsewhere");
  EXPECT_NE(code(moved).find("forbidden_change: signed serial 7 (key oem): state_dir"),
            std::string::npos);
}

TEST_F(SignedConfig, StateRoundTripAndRestore) {
  const SignedBundle b1 = parse_bundle(bundle(oem, yaml(oem, 20), 1));
  const SignedBundle b2 = parse_bundle(bundle(oem, yaml(oem, 30), 2));
  SignedState s;
  s = after_apply(s, b1);
  EXPECT_EQ(s.last_serial, 1u);
  EXPECT_TRUE(s.restorable);
  EXPECT_FALSE(s.previous);  // the local file
  s = after_apply(s, b2);
  EXPECT_EQ(s.previous, b1);
  EXPECT_EQ(parse_state(Json::parse(state_json(s).dump())), s);
  s = after_restore(s);
  EXPECT_EQ(s.running, b1);
  EXPECT_EQ(s.last_serial, 2u);  // replay protection stays
  EXPECT_FALSE(s.restorable);
  EXPECT_EQ(parse_state(Json::parse(state_json(s).dump())), s);
  EXPECT_THROW(parse_state(Json{{"version", 2}}), std::runtime_error);
  EXPECT_THROW(parse_state(Json{{"version", 1}, {"last_serial", "x"}}), std::runtime_error);
}

}  // namespace
}  // namespace tp
