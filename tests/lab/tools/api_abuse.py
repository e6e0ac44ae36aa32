#!/usr/bin/env python3
"""Misbehaving API clients, to show they only hurt themselves: malformed JSON, an oversized
request, a client that disconnects halfway through a request, requests of every JSON shape but the
right one. Prints one line per case with the
daemon's reply (or what happened); exits 1 if a case did not get the documented treatment."""
import json
import socket
import sys

path = sys.argv[1]


def connect():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(5)
    s.connect(path)
    return s


def reply_line(s):
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = s.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf.decode().strip()


ok = True

s = connect()
s.sendall(b"{this is not json\n")
r = json.loads(reply_line(s))
print("malformed:", r)
ok &= r.get("error") == "malformed_json"
s.sendall(b'{"op":"status"}\n')  # the same connection keeps working
r = json.loads(reply_line(s))
print("after malformed:", r.get("ok"))
ok &= r.get("ok") is True
s.close()

s = connect()
try:
    s.sendall(b"x" * (70 * 1024))
except OSError:
    pass
r = json.loads(reply_line(s) or "{}")
print("oversized:", r)
ok &= r.get("error") == "request_too_large"
s.close()

s = connect()
s.sendall(b'{"op":"set_upstr')
s.close()
print("vanished mid-request")

s = connect()
s.sendall(b'{"op":"nope"}\n')
r = json.loads(reply_line(s))
print("unknown op:", r)
ok &= r.get("error") == "unknown_op"
s.close()
# Any JSON shape where an object with a string "op" belongs: an error reply each, same connection.
s = connect()
for line in [b'{"op":1}', b'{"op":null}', b'{"op":[]}', b'{"op":{"a":1}}', b"[]", b"7", b'"op"',
             b"null", b'{"op":"set_upstream","iface":"wifi0\\u0000"}', b"\xff\xfe{}"]:
    s.sendall(line + b"\n")
    raw = reply_line(s)
    try:
        r = json.loads(raw)
    except ValueError:
        r = {"unparseable": raw}
    print("shape", line, "->", r)
    ok &= r.get("ok") is False
s.sendall(b'{"op":"status"}\n')
r = json.loads(reply_line(s))
print("after every shape:", r.get("ok"))
ok &= r.get("ok") is True
s.close()
sys.exit(0 if ok else 1)
