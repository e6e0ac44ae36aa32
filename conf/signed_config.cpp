// The `signed_config` section: the trust anchors of remote configurations (docs/configuration.md).
#include <sodium.h>

#include <set>

#include "yaml_field.hpp"

namespace tp::conf {

SignedConfigConfig parse_signed_config(const Field& f) {
  f.only_keys({"trusted_keys"});
  SignedConfigConfig s;
  const auto keys = f.child("trusted_keys");
  if (!keys) return s;
  std::set<std::string> names;
  std::set<std::array<uint8_t, 32>> seen;
  keys->each([&](const Field& e) {
    e.only_keys({"name", "public_key"});
    TrustedKey k;
    const auto name = e.child("name");
    if (!name) e.fail("missing key 'name'");
    k.name = name->string();
    if (!valid_uplink_name(k.name))
      name->fail("expected 1 to 32 of A-Z a-z 0-9 _ -, got '" + k.name + "'");
    if (!names.insert(k.name).second) name->fail("duplicate key name '" + k.name + "'");
    const auto pk = e.child("public_key");
    if (!pk) e.fail("missing key 'public_key'");
    const std::string text = pk->string();
    std::size_t len = 0;
    if (sodium_base642bin(k.public_key.data(), k.public_key.size(), text.data(), text.size(),
                          nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        len != k.public_key.size())
      pk->fail("expected the base64 of a raw 32-byte Ed25519 public key");
    if (!seen.insert(k.public_key).second) pk->fail("the same key is named twice");
    s.trusted_keys.push_back(std::move(k));
  });
  return s;
}

}  // namespace tp::conf
