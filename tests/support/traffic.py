#!/usr/bin/env python3
"""Real sockets for the kernel engine's traffic test (tests/unit/test_bpf_traffic.cpp).

  traffic.py serve ADDR4 ADDR6 UDP_PORT TCP_PORT
      UDP: echoes every datagram from the same socket. TCP: reads an 8-byte length and that many
      bytes, sends them back, closes. Prints "ready" once listening.
  traffic.py udp SRC SPORT DST DPORT COUNT
      COUNT datagrams of growing size from SRC:SPORT, each must come back unchanged.
  traffic.py tcp SRC SPORT DST DPORT BYTES
      BYTES of pseudo-random data up from SRC:SPORT and back; both must arrive unchanged.
  traffic.py flood SRC SPORT DST DPORT SECONDS
      Numbered datagrams from SRC:SPORT for SECONDS, each sent once its predecessor came back or
      was given up for lost (1 s); prints how many were sent and came back.
Exit status 0 when everything arrived, 1 otherwise (the reason on stderr)."""
import os
import socket
import struct
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def serve(addr4, addr6, udp_port, tcp_port):
    def udp_echo(addr):
        s = socket.socket(family(addr), socket.SOCK_DGRAM)
        s.bind((addr, udp_port))
        while True:
            data, peer = s.recvfrom(65536)
            s.sendto(data, peer)

    def tcp_conn(c):
        with c:
            head = b""
            while len(head) < 8:
                more = c.recv(8 - len(head))
                if not more:
                    return
                head += more
            (n,) = struct.unpack("!Q", head)
            got = bytearray()
            while len(got) < n:
                more = c.recv(min(1 << 16, n - len(got)))
                if not more:
                    return
                got += more
            c.sendall(got)

    def tcp_serve(addr):
        s = socket.socket(family(addr), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((addr, tcp_port))
        s.listen(8)
        while True:
            c, _ = s.accept()
            threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()

    for addr in (addr4, addr6):
        threading.Thread(target=udp_echo, args=(addr,), daemon=True).start()
        threading.Thread(target=tcp_serve, args=(addr,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def udp(src, sport, dst, dport, count):
    s = socket.socket(family(src), socket.SOCK_DGRAM)
    s.bind((src, sport))
    s.settimeout(2.0)
    for i in range(count):
        data = os.urandom(16 + (i * 37) % 1300)
        s.sendto(data, (dst, dport))
        try:
            back, _ = s.recvfrom(65536)
        except socket.timeout:
            sys.exit(f"udp: datagram {i} ({len(data)} bytes) did not come back")
        if back != data:
            sys.exit(f"udp: datagram {i} came back changed")
    print(f"udp: {count} datagrams there and back")


def tcp(src, sport, dst, dport, nbytes):
    s = socket.socket(family(src), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, sport))
    s.settimeout(20.0)
    s.connect((dst, dport))
    data = os.urandom(nbytes)
    sender = threading.Thread(target=lambda: s.sendall(struct.pack("!Q", nbytes) + data))
    sender.start()
    got = bytearray()
    while len(got) < nbytes:
        more = s.recv(1 << 16)
        if not more:
            break
        got += more
    sender.join()
    s.close()
    if bytes(got) != data:
        sys.exit(f"tcp: {len(got)} of {nbytes} bytes came back, "
                 f"{'unchanged' if data.startswith(bytes(got)) else 'changed'}")
    print(f"tcp: {nbytes} bytes there and back")


def flood(src, sport, dst, dport, seconds):
    s = socket.socket(family(src), socket.SOCK_DGRAM)
    s.bind((src, sport))
    s.settimeout(1.0)
    end = time.monotonic() + seconds
    sent = back = 0
    while time.monotonic() < end:
        data = struct.pack("!Q", sent) + bytes(56)
        s.sendto(data, (dst, dport))
        sent += 1
        try:
            while s.recvfrom(2048)[0] != data:  # a late echo of a datagram given up for lost
                pass
            back += 1
        except socket.timeout:
            pass
    print(f"flood: {sent} sent, {back} came back")
    if back != sent:
        sys.exit(f"flood: {sent - back} lost")


if __name__ == "__main__":
    a = sys.argv[1:]
    if a[0] == "serve":
        serve(a[1], a[2], int(a[3]), int(a[4]))
    elif a[0] == "udp":
        udp(a[1], int(a[2]), a[3], int(a[4]), int(a[5]))
    elif a[0] == "tcp":
        tcp(a[1], int(a[2]), a[3], int(a[4]), int(a[5]))
    elif a[0] == "flood":
        flood(a[1], int(a[2]), a[3], int(a[4]), float(a[5]))
    else:
        sys.exit(__doc__)
