#!/usr/bin/env python3
"""The service manager's end of systemd's notify protocol, for the lab: binds a datagram socket
(the NOTIFY_SOCKET given to the daemon) and logs each assignment it receives, one per line, as
"MILLISECONDS KEY=VALUE" (time since the listener started). On the first READY=1 it runs
ON_READY at once and saves what it printed: the test reads the daemon's state at the moment it
said it was ready.

    notify_listener.py SOCKET LOG [ON_READY_OUTPUT ON_READY...]
"""
import os
import socket
import subprocess
import sys
import time


def main():
    path, log = sys.argv[1], sys.argv[2]
    ready_out, on_ready = (sys.argv[3], sys.argv[4:]) if len(sys.argv) > 4 else (None, [])
    if os.path.exists(path):
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    start = time.monotonic()
    readied = False
    with open(log, "a", buffering=1) as out:
        while True:
            data = sock.recv(4096)
            ms = int((time.monotonic() - start) * 1000)
            for line in data.decode(errors="replace").splitlines():
                out.write(f"{ms} {line}\n")
                if line == "READY=1" and not readied and on_ready:
                    readied = True
                    with open(ready_out, "w") as r:
                        subprocess.run(on_ready, stdout=r, stderr=subprocess.STDOUT, check=False)


if __name__ == "__main__":
    main()
