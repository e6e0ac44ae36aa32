#!/usr/bin/env python3
"""Watches a download in progress: samples FILE's size every 50 ms until process PID exits and
prints "max_stall_ms N at T", the longest time the file did not grow (the wait for the first byte
excluded) and when it began (Unix time, seconds)."""
import os
import sys
import time

path, pid = sys.argv[1], int(sys.argv[2])


def alive():
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


last_size, last_change, max_stall, stall_at = -1, None, 0.0, 0.0
while alive():
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    now = time.monotonic()
    if size != last_size:
        if last_change is not None and last_size > 0 and now - last_change > max_stall:
            max_stall = now - last_change
            stall_at = time.time() - max_stall
        last_size, last_change = size, now
    time.sleep(0.05)
print(f"max_stall_ms {int(max_stall * 1000)} at {stall_at:.1f}", flush=True)
