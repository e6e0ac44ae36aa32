#!/usr/bin/env python3
"""UDP server on ADDR PORT that answers every datagram with the source address and port it saw,
as "ip port". With a second argument pair it also sends one unsolicited datagram to a given
address when asked ("probe IP PORT"), to test the NAT's filtering."""
import socket
import sys

addr, port = sys.argv[1], int(sys.argv[2])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
s = socket.socket(family, socket.SOCK_DGRAM)
# Thousands of flows burst at once: the default buffer (~200 KiB) would overflow. 33 is
# SO_RCVBUFFORCE (root may exceed rmem_max).
s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)
s.bind((addr, port))
while True:
    data, peer = s.recvfrom(2048)
    if data.startswith(b"probe "):
        _, ip, p = data.decode().split()
        s.sendto(b"unsolicited", (ip, int(p)))
        continue
    s.sendto(f"{peer[0]} {peer[1]}".encode(), peer)
