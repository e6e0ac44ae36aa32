#!/usr/bin/env python3
"""Signed configuration bundles for tetherpath's apply_signed_config (docs/api.md).

  sign_config.py keygen KEY.pem           a new Ed25519 private key; prints the public key's
                                          base64 (signed_config.trusted_keys[].public_key)
  sign_config.py pubkey KEY.pem           the public key's base64 again
  sign_config.py sign KEY.pem NAME SERIAL CONFIG.yaml > BUNDLE.json

The signature covers b"tetherpath-signed-config-v1\\0" + decimal serial + b"\\0" + key name +
b"\\0" + the YAML's bytes, so neither the serial nor the key name can be swapped.
"""
import base64
import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DOMAIN = b"tetherpath-signed-config-v1"


def message(serial: int, key: str, config: bytes) -> bytes:
    return DOMAIN + b"\0" + str(serial).encode() + b"\0" + key.encode() + b"\0" + config


def load(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def public_b64(key) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def main(argv):
    if len(argv) == 3 and argv[1] == "keygen":
        key = Ed25519PrivateKey.generate()
        with open(argv[2], "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
        print(public_b64(key))
    elif len(argv) == 3 and argv[1] == "pubkey":
        print(public_b64(load(argv[2])))
    elif len(argv) == 6 and argv[1] == "sign":
        key, name, serial = load(argv[2]), argv[3], int(argv[4])
        with open(argv[5], "rb") as f:
            config = f.read()
        sig = key.sign(message(serial, name, config))
        json.dump({"config": config.decode(), "serial": serial, "key": name,
                   "signature": base64.b64encode(sig).decode()}, sys.stdout, indent=2)
        print()
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
