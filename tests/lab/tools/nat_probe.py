#!/usr/bin/env python3
"""From one UDP socket, asks two reflectors which source address and port they saw (mapping
behaviour), then asks the second reflector's host to send an unsolicited datagram to the mapping
the first saw from a third port (filtering behaviour). Prints one line:
"mapping same|different filtering open|closed". An optional fourth argument keeps the first
exchange going for that many seconds first, long enough for the flow to be offloaded."""
import socket
import sys
import time

r1, r2, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
warm = float(sys.argv[4]) if len(sys.argv) > 4 else 0
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
end = time.time() + warm
while time.time() < end:
    s.sendto(b"hello", (r1, port))
    s.recvfrom(2048)
    time.sleep(0.1)
seen = []
for r in (r1, r2):
    s.sendto(b"hello", (r, port))
    seen.append(s.recvfrom(2048)[0].decode())
mapping = "same" if seen[0] == seen[1] else "different"
ip, p = seen[0].split()
# Ask the reflector on r2's host, from a port the client never talked to, to send to our mapping.
probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
probe.sendto(f"probe {ip} {p}".encode(), (r2, port + 1))
try:
    data, _ = s.recvfrom(2048)
    filtering = "open" if data == b"unsolicited" else "closed"
except socket.timeout:
    filtering = "closed"
print(f"mapping {mapping} filtering {filtering}")
