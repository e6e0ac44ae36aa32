#!/usr/bin/env python3
"""stream_stall.py PCAP T0 SECONDS

How an iperf3 UDP stream fared around a moment T0 (Unix seconds), from a capture of it where it
arrives (PCAP, Ethernet, tcpdump -w with a filter for that one stream), in the window
[T0 - SECONDS, T0) ("before") against [T0, T0 + SECONDS] ("during"):

- delay_ms: the longest time a packet took from its sender to the capture, beyond the least any
  packet took. iperf3 stamps each datagram when it sends it (CLOCK_MONOTONIC on Linux; the
  capture's clock is CLOCK_REALTIME, hence "beyond the least"): a forwarding stall shows here.
- gap_ms: the longest silence between consecutive packets, whatever its cause (a sender starved
  of CPU shows here too).

Prints "before_delay_ms A during_delay_ms B before_gap_ms C during_gap_ms D packets_before N
packets_during M"; exits 1 if either window is empty (no stream to judge by).
"""
import struct
import sys


def packets(path):
    """(arrival, send stamp) of each captured iperf3 datagram, in seconds."""
    with open(path, "rb") as f:
        magic = f.read(24)[:4]
        order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
        while True:
            head = f.read(16)
            if len(head) < 16:
                return
            sec, frac, incl, _ = struct.unpack(order + "IIII", head)
            frame = f.read(incl)
            if len(frame) < 34 or frame[12:14] != b"\x08\x00":
                continue
            payload = 14 + (frame[14] & 0x0F) * 4 + 8  # Ethernet, IPv4, UDP
            if len(frame) < payload + 8:
                continue
            sent_s, sent_us = struct.unpack("!II", frame[payload:payload + 8])
            yield sec + frac / (1e9 if nano else 1e6), sent_s + sent_us / 1e6


def main():
    path, t0, span = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    rows = list(packets(path))
    least = min((at - sent for at, sent in rows), default=0.0)
    windows = {"before": [0.0, 0.0, 0], "during": [0.0, 0.0, 0]}  # delay, gap, packets
    prev = None
    for at, sent in rows:
        name = "before" if t0 - span <= at < t0 else "during" if t0 <= at <= t0 + span else None
        if name:
            w = windows[name]
            w[0] = max(w[0], at - sent - least)
            if prev is not None:
                w[1] = max(w[1], at - prev)
            w[2] += 1
        prev = at
    b, d = windows["before"], windows["during"]
    print(f"before_delay_ms {b[0] * 1000:.2f} during_delay_ms {d[0] * 1000:.2f} "
          f"before_gap_ms {b[1] * 1000:.1f} during_gap_ms {d[1] * 1000:.1f} "
          f"packets_before {b[2]} packets_during {d[2]}")
    return 0 if b[2] and d[2] else 1


if __name__ == "__main__":
    sys.exit(main())
