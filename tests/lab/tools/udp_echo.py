#!/usr/bin/env python3
"""UDP echo for datagrams of any size (up to 64 KiB, so IP fragments in both directions).

  udp_echo.py serve ADDR... PORT
      answers every datagram with the same bytes, from the address it was sent to.
  udp_echo.py warm ADDR PORT SPORT SECONDS
      from source port SPORT, exchanges a small datagram every 0.2 s for SECONDS (long enough for
      conntrack to mark the flow assured and the box to offload it); every answer must come back.
  udp_echo.py send ADDR PORT SPORT SIZE... [--count N]
      from source port SPORT, sends N datagrams of random bytes of each SIZE one at a time and
      waits for each echo. One line per size: "SIZE ok|lost|corrupt N/COUNT". Exit status 0 only
      if every echo came back intact.
  udp_echo.py idle ADDR PORT SPORT SECONDS COUNT
      from source port SPORT, COUNT times: stay silent for SECONDS, then time one small
      datagram's echo (the first packet after idleness). Prints "rtt MS" per exchange, then
      "median MS"; exit status 0 only if every echo came back.
"""
import os
import select
import socket
import sys
import time

TIMEOUT = 1.0  # a lossless lab returns an echo in milliseconds


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def client(addr, sport):
    s = socket.socket(family(addr), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, 33, 4 << 20)  # SO_RCVBUFFORCE: a 64 KiB echo must fit
    s.bind(("::" if family(addr) == socket.AF_INET6 else "0.0.0.0", sport))
    s.settimeout(TIMEOUT)
    return s


def exchange(s, dest, payload):
    """Sends one datagram and reads until its echo or the timeout: "ok", "corrupt" or "lost"."""
    s.sendto(payload, dest)
    deadline = time.time() + TIMEOUT
    while True:
        s.settimeout(max(deadline - time.time(), 0.001))
        try:
            data, _ = s.recvfrom(65536)
        except socket.timeout:
            return "lost"
        if data == payload:
            return "ok"
        if len(data) == len(payload):
            return "corrupt"
        # A late echo of an earlier datagram (another size): keep waiting for this one.


def serve(addrs, port):
    socks = []
    for a in addrs:
        s = socket.socket(family(a), socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)
        s.bind((a, port))
        socks.append(s)
    while True:
        for s in select.select(socks, [], [])[0]:
            data, peer = s.recvfrom(65536)
            s.sendto(data, peer)


def main(argv):
    mode = argv[1]
    if mode == "serve":
        serve(argv[2:-1], int(argv[-1]))
    addr, port, sport = argv[2], int(argv[3]), int(argv[4])
    dest = (addr, port)
    s = client(addr, sport)
    if mode == "warm":
        end = time.time() + float(argv[5])
        while time.time() < end:
            if exchange(s, dest, b"warm") != "ok":
                print("warm-up echo lost", flush=True)
                return 1
            time.sleep(0.2)
        return 0
    if mode == "idle":
        rtts = []
        for _ in range(int(argv[6])):
            time.sleep(float(argv[5]))
            t0 = time.perf_counter()
            if exchange(s, dest, b"idle") != "ok":
                print("lost", flush=True)
                return 1
            rtts.append((time.perf_counter() - t0) * 1000)
            print(f"rtt {rtts[-1]:.3f}", flush=True)
        print(f"median {sorted(rtts)[len(rtts) // 2]:.3f}", flush=True)
        return 0
    args = argv[5:]
    count = 1
    if "--count" in args:
        i = args.index("--count")
        count = int(args[i + 1])
        del args[i : i + 2]
    failed = False
    for size in map(int, args):
        results = [exchange(s, dest, os.urandom(size)) for _ in range(count)]
        good = results.count("ok")
        worst = "ok" if good == count else ("corrupt" if "corrupt" in results else "lost")
        failed |= good != count
        print(f"{size} {worst} {good}/{count}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
