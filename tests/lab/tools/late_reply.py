#!/usr/bin/env python3
"""Whether a UDP NAT mapping outlives its conntrack entry.
  server ADDR PORT DELAY: echoes datagrams; after "idle" it waits DELAY s, then sends "late" to
                          the peer that said it (through the mapping, if it still exists).
  client ADDR PORT WARM WAIT: exchanges a datagram every 0.1 s for WARM s (long enough to be
                          offloaded), says "idle", then only listens for WAIT s.
The client prints "late received" or "late silent"."""
import socket
import sys
import threading
import time

mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if mode == "server":
    delay = float(sys.argv[4])
    s.bind((addr, port))
    while True:
        data, peer = s.recvfrom(2048)
        s.sendto(data, peer)
        if data == b"idle":
            threading.Timer(delay, lambda p=peer: s.sendto(b"late", p)).start()
else:
    warm, wait = float(sys.argv[4]), float(sys.argv[5])
    s.settimeout(1)
    end = time.time() + warm
    while time.time() < end:
        s.sendto(b"warm", (addr, port))
        try:
            s.recvfrom(2048)
        except socket.timeout:
            pass
        time.sleep(0.1)
    s.sendto(b"idle", (addr, port))
    end = time.time() + wait
    result = "silent"
    while time.time() < end:
        try:
            data, _ = s.recvfrom(2048)
        except socket.timeout:
            continue
        if data == b"late":
            result = "received"
            break
    print(f"late {result}", flush=True)
