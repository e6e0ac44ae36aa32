#!/usr/bin/env bash
# Installs everything tetherpath needs to build, test and run its lab on Debian 12.
# Idempotent: packages already present are skipped, so both README commands call it every time.
set -euo pipefail

packages=(
  # build
  meson ninja-build pkg-config g++ clang llvm libclang-rt-14-dev clang-format
  go-md2man  # the man pages, from Markdown
  # libraries
  libdpdk-dev dpdk dpdk-dev libxdp-dev libbpf-dev libnetfilter-conntrack-dev libmnl-dev libnftables-dev
  libyaml-cpp-dev libboost-dev nlohmann-json3-dev libgtest-dev libbenchmark-dev
  libsystemd-dev  # sd_notify: READY, STOPPING and the watchdog under systemd
  libsodium-dev  # Ed25519 signatures of remote configurations
  # lab and tests: real kernel, real clients
  iproute2 iputils-ping nftables conntrack iperf3 curl dnsutils dnsmasq-base udhcpc ndisc6 tcpdump xdp-tools ethtool
  procps psmisc libcap2-bin
  systemd man-db  # systemd-analyze verify of the installed unit; man renders the pages
  python3
  python3-cryptography  # tests/lab/tools/sign_config.py: signs the lab's configuration bundles
  # perf lab: testpmd (in dpdk-dev) is the I/O ceiling, gnuplot draws the plots
  gnuplot-nox
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
