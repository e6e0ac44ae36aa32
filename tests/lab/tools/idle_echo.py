#!/usr/bin/env python3
"""Opens one TCP connection to ADDR PORT (an echo server: hold_server.py), exchanges a line and
prints "open"; then, for each line read from stdin, sends one and prints "rtt MS" with the time
its echo took (or "dead" if it did not come back within 5 s). Ends when stdin closes."""
import socket
import sys
import time

addr, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((addr, port), timeout=5)
s.sendall(b"hello\n")
s.recv(16)
print("open", flush=True)
for _ in sys.stdin:
    t0 = time.monotonic()
    try:
        s.sendall(b"again\n")
        ok = bool(s.recv(16))
    except OSError:
        ok = False
    print(f"rtt {(time.monotonic() - t0) * 1000:.2f}" if ok else "dead", flush=True)
