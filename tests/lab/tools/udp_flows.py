#!/usr/bin/env python3
"""Opens COUNT UDP sockets to an echo server ADDR PORT and keeps each exchanging a datagram every
0.5 s for SECONDS (long enough for conntrack to mark them assured). Prints "answered N": how many
sockets got an answer in the last round."""
import select
import socket
import sys
import time

addr, port, count, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(count):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setblocking(False)
    socks.append(s)
by_fd = {s.fileno(): s for s in socks}
poller = select.poll()  # select() stops at descriptor 1024
for s in socks:
    poller.register(s, select.POLLIN)


def collect(answered, until, want=None):
    """Reads answers until the deadline, or until `want` sockets have answered."""
    while time.time() < until and (want is None or len(answered) < want):
        for fd, _ in poller.poll(50):
            try:
                by_fd[fd].recv(64)
                answered.add(fd)
            except BlockingIOError:
                pass


def send_all():
    for s in socks:
        s.sendto(b"ping", (addr, port))


end = time.time() + seconds
while time.time() < end:
    send_all()
    collect(set(), time.time() + 0.5)
# Last round: every flow must answer; give the answers time to arrive.
answered = set()
send_all()
collect(answered, time.time() + 3, count)
print(f"answered {len(answered)}", flush=True)
