#!/usr/bin/env python3
"""Pings DEST COUNT times, every INTERVAL s, with ICMP identifier ID (as every Windows ping uses 1),
each request carrying TAG and its sequence number. Prints "own N foreign M sent K": replies that
carry this client's tag, and replies that carry someone else's (another client's, delivered here
because the NAT mapping was confused)."""
import select
import socket
import struct
import sys
import time

dest, ident, tag, count, interval = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), int(sys.argv[4]), float(sys.argv[5])


def checksum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
own, foreign, seen = 0, 0, set()
deadline = time.time() + count * interval + 2
sent = 0
next_send = time.time()
while time.time() < deadline:
    if sent < count and time.time() >= next_send:
        payload = tag + b":" + str(sent).encode()
        hdr = struct.pack("!BBHHH", 8, 0, 0, ident, sent)
        pkt = struct.pack("!BBHHH", 8, 0, checksum(hdr + payload), ident, sent) + payload
        s.sendto(pkt, (dest, 0))
        sent += 1
        next_send += interval
    r, _, _ = select.select([s], [], [], 0.01)
    if not r:
        continue
    data = s.recv(65535)
    ihl = (data[0] & 0x0F) * 4
    typ, _, _, rid, seq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
    if typ != 0 or rid != ident:
        continue
    body = data[ihl + 8:]
    if body.startswith(tag + b":"):
        if seq not in seen:
            own += 1
            seen.add(seq)
    else:
        foreign += 1
print(f"own {own} foreign {foreign} sent {sent}", flush=True)
