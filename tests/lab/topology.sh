#!/usr/bin/env bash
# The lab topology: network namespaces and veths standing in for the cellular network, the
# connection box and two tethered clients. Idempotent and safe to re-run after a crash.
#
#   tp-net  (internet + cellular network)       servers 203.0.113.10, .11, 2001:db8:ffff::10:
#                                               HTTP (port 80), iperf3 (5201), DNS (53, example.lab)
#     tp-net-modem 100.64.0.1/24 2001:db8:100::1/64
#        |  veth
#   tp-box  tp-modem-raw  (bound by tetherpath)  -> TAP modem0 100.64.0.2/24 2001:db8:100::2/64
#           tp-wifi-raw                          -> TAP wifi0 192.168.50.1/24 2001:db8:50::1/64
#           tp-usb-raw                           -> TAP usb0  192.168.60.1/24 2001:db8:60::1/64
#        |  veth
#   tp-wifi tp-wifi-c 02:00:00:50:00:10: DHCP 192.168.50.10 (reserved), SLAAC 2001:db8:50::ff:fe50:10
#   tp-usb  tp-usb-c  02:00:00:60:00:10: DHCP 192.168.60.10 (reserved), SLAAC 2001:db8:60::ff:fe60:10
#
# With TP_ENGINE=kernel the box has no raw ports and no TAPs: its veths are named modem0, wifi0
# and usb0 and are the kernel's interfaces, to which tetherpath attaches its tc/XDP programs.
# TP_LAB_MODEM=rawip (kernel engine) makes modem0 a raw-IP device, as a modem's rmnet is: a
# TUN device (IPv4 and IPv6, no link-layer header) relayed to one in tp-net (tools/tun_pair.py).
# TP_LAB_PHONE=1 adds a second uplink, a phone tethered to the box: port phone0 (kernel engine:
# a veth; DPDK engine: tp-phone-raw and its TAP), 100.65.0.2/24 behind gateway 100.65.0.1
# (tp-net-phone), masqueraded like the modem; the same servers answer through it, and seen from
# tp-net a connection's source address and interface tell which uplink carried it.
#
# Usage: topology.sh up | down | box
#   up    namespaces, veths, servers (HTTP, iperf3, DNS) in tp-net, clients' links
#   box   the box's kernel side, once tetherpath has created its TAPs: addresses, routes,
#         forwarding, nftables masquerade out of modem0, DHCP and router advertisements on wifi0
#         and usb0 (dnsmasq); then the clients take their addresses (udhcpc, SLAAC)
#   down  everything above, and any process left in the namespaces
set -euo pipefail

NS=(tp-net tp-box tp-wifi tp-usb)
LAB_DIR=${TP_LAB_DIR:-/tmp/tp-lab}
ENGINE=${TP_ENGINE:-dpdk}
MODEM=${TP_LAB_MODEM:-ether}
PHONE=${TP_LAB_PHONE:-0}

need_root() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "topology: needs root (network namespaces, veths, nftables)" >&2
    exit 77
  fi
}

nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

# veth offloads off: frames must reach AF_PACKET as the wire would carry them (no GSO super-
# packets, no partial checksums).
plain_veth() {
  local ns=$1 dev=$2
  nsx "$ns" ethtool -K "$dev" tx off rx off tso off gso off gro off >/dev/null 2>&1 || true
}

down() {
  for ns in "${NS[@]}"; do
    if ip netns list | grep -w "$ns" >/dev/null; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  rm -rf "$LAB_DIR"
}

up() {
  down
  mkdir -p "$LAB_DIR/www"
  for ns in "${NS[@]}"; do
    ip netns add "$ns"
    nsx "$ns" ip link set lo up
  done

  if [ "$ENGINE" = kernel ] && [ "$MODEM" = rawip ]; then
    # TUN devices joined by a relay: the kernel here has no tunnel drivers, and a TUN device is
    # what a raw-IP device looks like to the stack (ARPHRD_NONE, no link-layer header).
    python3 "$(dirname "$0")/tools/tun_pair.py" tp-box modem0 tp-net tp-net-modem >"$LAB_DIR/tun_pair.log" 2>&1 &
    for _ in $(seq 50); do
      nsx tp-box ip link show modem0 >/dev/null 2>&1 && nsx tp-net ip link show tp-net-modem >/dev/null 2>&1 && break
      sleep 0.1
    done
  elif [ "$ENGINE" = kernel ]; then
    ip link add tp-net-modem netns tp-net type veth peer name modem0 netns tp-box
  fi
  if [ "$ENGINE" = kernel ]; then
    ip link add tp-wifi-c netns tp-wifi type veth peer name wifi0 netns tp-box
    ip link add tp-usb-c netns tp-usb type veth peer name usb0 netns tp-box
    local box_devs="modem0 wifi0 usb0"
    if [ "$PHONE" = 1 ]; then
      ip link add tp-net-phone netns tp-net type veth peer name phone0 netns tp-box
      box_devs="$box_devs phone0"
    fi
    for dev in $box_devs; do
      plain_veth tp-box "$dev"
      nsx tp-box ip link set "$dev" up
    done
  else
    ip link add tp-net-modem netns tp-net type veth peer name tp-modem-raw netns tp-box
    ip link add tp-wifi-c netns tp-wifi type veth peer name tp-wifi-raw netns tp-box
    ip link add tp-usb-c netns tp-usb type veth peer name tp-usb-raw netns tp-box

    # The box's raw ports belong to tetherpath: the kernel gets no address on them, no IPv6, and
    # drops what arrives there (AF_PACKET has its copy before the ingress hook runs).
    local raw_devs="tp-modem-raw tp-wifi-raw tp-usb-raw"
    if [ "$PHONE" = 1 ]; then
      ip link add tp-net-phone netns tp-net type veth peer name tp-phone-raw netns tp-box
      raw_devs="$raw_devs tp-phone-raw"
    fi
    for dev in $raw_devs; do
      nsx tp-box nft add table netdev tp_raw
      nsx tp-box nft add chain netdev tp_raw "${dev//-/_}" \
        "{ type filter hook ingress device \"$dev\" priority -500; policy drop; }"
    done
    for dev in $raw_devs; do
      nsx tp-box sysctl -qw "net.ipv6.conf.$dev.disable_ipv6=1"
      plain_veth tp-box "$dev"
      nsx tp-box ip link set "$dev" up
    done
  fi

  # The network side: modem link, server addresses, routes back to the box's IPv6 prefixes.
  nsx tp-net sysctl -qw net.ipv6.conf.all.forwarding=1
  plain_veth tp-net tp-net-modem
  nsx tp-net ip addr add 100.64.0.1/24 dev tp-net-modem
  nsx tp-net ip addr add 2001:db8:100::1/64 dev tp-net-modem nodad
  nsx tp-net ip link set tp-net-modem up
  nsx tp-net ip addr add 203.0.113.10/32 dev lo
  nsx tp-net ip addr add 203.0.113.11/32 dev lo
  nsx tp-net ip addr add 2001:db8:ffff::10/128 dev lo
  nsx tp-net ip -6 route add 2001:db8:50::/64 via 2001:db8:100::2
  nsx tp-net ip -6 route add 2001:db8:60::/64 via 2001:db8:100::2
  if [ "$PHONE" = 1 ]; then
    plain_veth tp-net tp-net-phone
    nsx tp-net ip addr add 100.65.0.1/24 dev tp-net-phone
    nsx tp-net ip link set tp-net-phone up
  fi

  # Clients: a fixed MAC (the DHCP reservation, the SLAAC interface id), no address yet: they
  # get them from the box (see box()).
  for c in wifi:50 usb:60; do
    local name=${c%%:*} net=${c##*:}
    plain_veth "tp-$name" "tp-$name-c"
    nsx "tp-$name" ip link set "tp-$name-c" address "02:00:00:$net:00:10"
    nsx "tp-$name" sysctl -qw "net.ipv6.conf.tp-$name-c.accept_dad=0"
    nsx "tp-$name" ip link set "tp-$name-c" up
  done

  if [ "$ENGINE" = kernel ]; then
    # Frames the box's XDP programs redirect into a veth are received by its peer through NAPI,
    # which a veth enables with GRO (or an XDP program) on the receiving side. The box's veth
    # advertises that it takes redirected frames (xdp-features) only once both ends are up.
    [ "$MODEM" = rawip ] || nsx tp-net ethtool -K tp-net-modem gro on
    [ "$PHONE" = 1 ] && nsx tp-net ethtool -K tp-net-phone gro on
    nsx tp-wifi ethtool -K tp-wifi-c gro on
    nsx tp-usb ethtool -K tp-usb-c gro on
  fi

  # Servers: HTTP (files in $LAB_DIR/www) and iperf3, on every server address.
  nsx tp-net python3 -m http.server 80 --bind :: --directory "$LAB_DIR/www" >"$LAB_DIR/http.log" 2>&1 &
  # DNS: example.lab and its AAAA, answered by the network's resolver on the first server.
  nsx tp-net dnsmasq --keep-in-foreground --no-resolv --no-hosts --bind-interfaces \
    --listen-address=203.0.113.10 --listen-address=2001:db8:ffff::10 --port=53 \
    --address=/example.lab/203.0.113.11 --address=/example.lab/2001:db8:ffff::10 \
    --pid-file="$LAB_DIR/dnsmasq.pid" >"$LAB_DIR/dnsmasq.log" 2>&1 &
  # iperf3 bound per address: a wildcard UDP socket would answer from 100.64.0.1, which the box's
  # conntrack rightly does not match to the flow.
  local addr
  for addr in 203.0.113.10 203.0.113.11 2001:db8:ffff::10; do
    nsx tp-net iperf3 -s -D -B "$addr" -p 5201 --logfile "$LAB_DIR/iperf3-$addr.log"
  done
  wait_port tp-net 80
}

# The box's DHCP server and router advertisements (dnsmasq, no DNS: the network's resolver on
# 203.0.113.10 answers), then the clients' DHCP (udhcpc) and SLAAC. Every frame of it crosses
# tetherpath's exception path. Re-run after each daemon start: the clients renew.
serve_clients() {
  local pidf=$LAB_DIR/box-dnsmasq.pid
  # One dnsmasq for the lab's life: it follows the TAPs as tetherpath restarts recreate them
  # (a restarted one would first withdraw the clients' default route).
  if ! { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }; then
    nsx tp-box dnsmasq --keep-in-foreground --port=0 --bind-dynamic --interface=wifi0 \
      --interface=usb0 --dhcp-authoritative --dhcp-leasefile="$LAB_DIR/box-dhcp.leases" \
      --dhcp-range=192.168.50.100,192.168.50.199,255.255.255.0,12h \
      --dhcp-range=192.168.60.100,192.168.60.199,255.255.255.0,12h \
      --dhcp-host=02:00:00:50:00:10,192.168.50.10 --dhcp-host=02:00:00:60:00:10,192.168.60.10 \
      --dhcp-option=option:dns-server,203.0.113.10 \
      --enable-ra --ra-param=wifi0,10,1800 --ra-param=usb0,10,1800 \
      --dhcp-range=::,constructor:wifi0,ra-only,64,1h --dhcp-range=::,constructor:usb0,ra-only,64,1h \
      --pid-file="$pidf" >"$LAB_DIR/box-dnsmasq.log" 2>&1 &
  fi
  local c name net
  for c in wifi:50 usb:60; do
    name=${c%%:*} net=${c##*:}
    TP_LAB_DIR=$LAB_DIR nsx "tp-$name" udhcpc -i "tp-$name-c" -n -q -t 20 -T 1 -A 1 \
      -s "$(dirname "$0")/tools/udhcpc.script" >>"$LAB_DIR/udhcpc.log" 2>&1 ||
      { echo "topology: tp-$name got no DHCP lease (see $LAB_DIR/udhcpc.log)" >&2; return 1; }
  done
  for c in wifi:50 usb:60; do
    name=${c%%:*} net=${c##*:}
    # Usually 1-3 s; the bound is generous. (No `grep -q` here: under pipefail its early exit
    # makes the pipeline fail with SIGPIPE even when the line is there.)
    for i in $(seq 450); do
      nsx "tp-$name" ip -6 route show default | grep via >/dev/null &&
        nsx "tp-$name" ip -6 addr show dev "tp-$name-c" | grep "2001:db8:$net::ff:fe$net:10" >/dev/null && break
      # Ask, as a host does when it joins a link: the answer configures the kernel.
      [ $((i % 5)) = 0 ] && { nsx "tp-$name" rdisc6 -1 -w 300 "tp-$name-c" >/dev/null 2>&1 || true; }
      sleep 0.1
    done
    nsx "tp-$name" ip -6 addr show dev "tp-$name-c" | grep "2001:db8:$net::ff:fe$net:10" >/dev/null || {
      echo "topology: tp-$name got no SLAAC address (router advertisement); its IPv6 state:" >&2
      nsx "tp-$name" ip -6 addr show dev "tp-$name-c" >&2
      nsx "tp-$name" ip -6 route >&2
      return 1
    }
  done
}

wait_port() {
  local ns=$1 port=$2
  for _ in $(seq 50); do
    nsx "$ns" ss -ltn "sport = :$port" | grep LISTEN >/dev/null && return 0
    sleep 0.1
  done
  echo "topology: nothing listens on port $port in $ns" >&2
  return 1
}

wait_taps() {
  local dev missing
  for _ in $(seq 100); do
    missing=
    for dev in modem0 wifi0 usb0 $([ "$PHONE" = 1 ] && echo phone0); do
      nsx tp-box ip link show "$dev" >/dev/null 2>&1 || missing="$missing $dev"
    done
    [ -z "$missing" ] && return 0
    sleep 0.1
  done
  echo "topology: tetherpath's TAPs ($missing) did not appear in tp-box" >&2
  return 1
}

box() {
  wait_taps
  nsx tp-box sysctl -qw net.ipv4.ip_forward=1
  nsx tp-box sysctl -qw net.ipv6.conf.all.forwarding=1
  local a
  for a in "modem0 100.64.0.2/24 2001:db8:100::2/64" "wifi0 192.168.50.1/24 2001:db8:50::1/64" \
    "usb0 192.168.60.1/24 2001:db8:60::1/64"; do
    set -- $a
    # No DAD on the box's side either: dnsmasq cannot advertise from a tentative link-local.
    nsx tp-box sysctl -qw "net.ipv6.conf.$1.accept_dad=0"
    nsx tp-box ip addr replace "$2" dev "$1"
    nsx tp-box ip addr replace "$3" dev "$1" nodad
    nsx tp-box ip link set "$1" up
  done
  if [ "$PHONE" = 1 ]; then
    nsx tp-box sysctl -qw net.ipv6.conf.phone0.accept_dad=0
    nsx tp-box ip addr replace 100.65.0.2/24 dev phone0
    nsx tp-box ip link set phone0 up
  fi
  nsx tp-box ip route replace default via 100.64.0.1 dev modem0
  nsx tp-box ip -6 route replace default via 2001:db8:100::1 dev modem0
  serve_clients
  # Accounting on, so tests can see the kernel's per-flow counters stop when the fast path takes
  # over. The inet filter table makes the kernel track IPv6 too, as a real box's firewall does;
  # TP_LAB_IPV6_UNTRACKED=1 makes it an ip table, and the kernel then leaves IPv6 untracked.
  local family=inet
  [ "${TP_LAB_IPV6_UNTRACKED:-0}" = 1 ] && family=ip
  nsx tp-box sysctl -qw net.netfilter.nf_conntrack_acct=1
  nsx tp-box nft -f - <<NFT
table ip tp_nat
delete table ip tp_nat
table ip tp_nat {
  chain post { type nat hook postrouting priority srcnat; oifname { "modem0", "phone0" } masquerade; }
}
table $family tp_filter
delete table $family tp_filter
table $family tp_filter {
  chain forward {
    type filter hook forward priority filter; policy accept;
    ct state established,related counter accept
    ct state new counter accept
  }
}
NFT
}

need_root
case "${1:-}" in
  up) up ;;
  down) down ;;
  box) box ;;
  *) echo "usage: $0 up|down|box" >&2; exit 2 ;;
esac
