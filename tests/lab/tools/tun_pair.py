#!/usr/bin/env python3
"""A raw-IP link between two network namespaces, as a modem's rmnet device is to the box: a TUN
device (no link-layer header, IFF_NO_PI) in each, joined by a socketpair this process relays
over. Runs until killed (the lab's topology teardown kills every process in its namespaces, and
both halves live in one).

    tun_pair.py NS_A DEV_A NS_B DEV_B
"""
import ctypes
import fcntl
import os
import select
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
CLONE_NEWNET = 0x40000000


def enter(ns):
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns {ns}")
    os.close(fd)


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def relay(tun, sock):
    while True:
        ready, _, _ = select.select([tun, sock], [], [])
        try:
            if tun in ready:
                sock.send(os.read(tun, 65535))
            if sock in ready:
                data = sock.recv(65535)
                if not data:
                    return
                os.write(tun, data)
        except OSError:
            pass  # a device set down drops what it carries, as a link would


def main():
    ns_a, dev_a, ns_b, dev_b = sys.argv[1:5]
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    if os.fork() == 0:
        a.close()
        enter(ns_b)
        relay(open_tun(dev_b), b)
        os._exit(0)
    b.close()
    enter(ns_a)
    relay(open_tun(dev_a), a)


if __name__ == "__main__":
    main()
