// Writes a seed corpus for fuzz_engine: valid frames of every offloaded flow and of the common
// exception cases, in the fuzzer's input format ([port & flags] then [length][frame]...), so the
// fuzzer starts past the MAC, length and checksum gates instead of having to guess them. With
// --bpf, the corpus of fuzz_bpf instead: every frame of the golden table, once per hook, in its
// format ([port | hook | repair] then the frame).
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine_harness.hpp"
#include "golden_cases.hpp"

using namespace tp::test;
using namespace tp::test::lab;

namespace {

int write_bpf_seeds(const std::string& dir) {
  int n = 0;
  auto write = [&](const Golden& g, bool repair) {
    for (uint8_t hook = 0; hook < 3; ++hook) {  // tc, tc with CHECKSUM_COMPLETE, XDP
      std::ofstream f(dir + "/bpf-" + std::to_string(n++), std::ios::binary);
      // Repair only where the checksums are right to begin with: some exception cases are not.
      f.put(static_cast<char>((g.in_port & 7) | hook << 3 | (repair ? 0x20 : 0)));
      f.write(reinterpret_cast<const char*>(g.in.data()),
              static_cast<std::streamsize>(g.in.size()));
    }
  };
  for (const Golden& g : golden_forwarding_cases()) write(g, true);
  for (const Golden& g : golden_exception_cases()) write(g, false);
  std::printf("wrote %d seeds to %s\n", n, dir.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--bpf") == 0) return write_bpf_seeds(argv[2]);
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s [--bpf] OUTPUT_DIR\n", argv[0]);
    return 2;
  }
  auto up4 = [] {
    return PacketBuilder().eth(kWifiClientMac, kWifiMac).ipv4(kWifiClient, kServer);
  };
  auto down4 = [] { return PacketBuilder().eth(kGatewayMac, kModemMac).ipv4(kServer, kModemAddr); };
  auto up6 = [] {
    return PacketBuilder().eth(kWifiClientMac, kWifiMac).ipv6(kWifiClient6, kServer6);
  };
  const std::vector<std::pair<uint8_t, Bytes>> frames = {
      {kWifi, up4().tcp(40000, 80).payload(20).build()},
      {kModem, down4().tcp(80, 61000).payload(20).build()},
      {kWifi, up4().udp(5353, 53).payload(12).build()},
      {kModem, down4().udp(53, 61001).payload(12).build()},
      {kWifi, up4().icmp(8, 0, 0x1234, 1).payload(8).build()},
      {kModem, down4().icmp(0, 0, 0x4321, 1).payload(8).build()},
      {kModem, down4().icmp(3, 3).payload(28).build()},
      {kWifi, up4().ipv4_options({1, 1, 1, 1}).tcp(40000, 80).build()},
      {kWifi, up4().frag(true, 0).udp(1, 2).build()},
      {kWifi, PacketBuilder()
                  .eth(kWifiClientMac, kWifiMac)
                  .vlan(20)
                  .ipv4(kWifiClient, kServer)
                  .udp(5353, 53)
                  .build()},
      {kWifi, up6().tcp(40000, 443).payload(20).build()},
      {kWifi, up6().ipv6_ext(0).ipv6_ext(44).udp(1, 2).build()},
      {kWifi, up6().icmp6(135, 0).payload(16).build()},
      {kWifi, PacketBuilder()
                  .eth(kWifiClientMac, "ff:ff:ff:ff:ff:ff")
                  .ethertype(0x0806)
                  .payload(28)
                  .build()},
  };
  int n = 0;
  for (const auto& [port, frame] : frames) {
    if (frame.size() > 255) continue;
    std::ofstream f(std::string(argv[1]) + "/seed-" + std::to_string(n++), std::ios::binary);
    f.put(static_cast<char>(port | 0x04));  // bit 2: repair the IPv4 header checksum
    f.put(static_cast<char>(frame.size()));
    f.write(reinterpret_cast<const char*>(frame.data()),
            static_cast<std::streamsize>(frame.size()));
  }
  std::printf("wrote %d seeds to %s\n", n, argv[1]);
  return 0;
}
