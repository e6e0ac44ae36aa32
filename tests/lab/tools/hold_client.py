#!/usr/bin/env python3
"""Opens COUNT TCP connections to ADDR PORT, exchanges one line on each, prints "open N", then
keeps them open until stdin closes; then checks every connection still answers and prints
"alive N"."""
import socket
import sys

addr, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
family = socket.AF_INET6 if ":" in addr else socket.AF_INET
conns = []
for _ in range(count):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((addr, port))
    s.sendall(b"hello\n")
    s.recv(16)
    conns.append(s)
print(f"open {len(conns)}", flush=True)
sys.stdin.read()
alive = 0
for s in conns:
    try:
        s.sendall(b"again\n")
        if s.recv(16):
            alive += 1
    except OSError:
        pass
print(f"alive {alive}", flush=True)
