#!/usr/bin/env python3
"""client_stats_match.py PCAP CLIENT BEFORE AFTER [TOLERANCE]

Whether tetherpath's per-client statistics (`tetherctl --json clients` before and after, files
BEFORE and AFTER) grew by the IP bytes a capture on the client's own link (PCAP, Ethernet, from
tcpdump -w) saw it send (up) and receive (down), within TOLERANCE (default 0.01). Prints both.
"""
import json
import socket
import struct
import sys


def captured(path, client):
    up = down = 0
    with open(path, "rb") as f:
        magic = f.read(24)[:4]
        order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        while True:
            head = f.read(16)
            if len(head) < 16:
                break
            incl = struct.unpack(order + "IIII", head)[2]
            frame = f.read(incl)
            if len(frame) < 34 or frame[12:14] != b"\x08\x00":
                continue
            length = struct.unpack("!H", frame[16:18])[0]
            src, dst = socket.inet_ntoa(frame[26:30]), socket.inet_ntoa(frame[30:34])
            if src == client:
                up += length
            elif dst == client:
                down += length
    return up, down


def counted(path, client):
    for c in json.load(open(path))["clients"]:
        if c["address"] == client:
            return c["up_bytes"], c["down_bytes"]
    return 0, 0


def main():
    pcap, client, before, after = sys.argv[1:5]
    tolerance = float(sys.argv[5]) if len(sys.argv) > 5 else 0.01
    cap_up, cap_down = captured(pcap, client)
    b, a = counted(before, client), counted(after, client)
    up, down = a[0] - b[0], a[1] - b[1]
    print(f"captured up {cap_up} down {cap_down}; counted up {up} down {down}")
    ok = all(c > 0 and abs(n - c) <= tolerance * c for n, c in ((up, cap_up), (down, cap_down)))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
