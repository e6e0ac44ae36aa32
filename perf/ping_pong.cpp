#include "ping_pong.hpp"

#include <algorithm>
#include <cstring>
#include <map>
#include <stdexcept>

#include "checksum.hpp"

namespace tp::test {
namespace {

constexpr uint8_t kTtl = 255;
// Next hops of the inverse flows start here, above every next hop of the lab topology.
constexpr uint16_t kFirstInverseNexthop = 64;

// What the fixture needs of a golden frame: MACs, tag, and the flow tuple as a key holds it.
struct Frame {
  Mac dst{}, src{};
  uint16_t vlan = 0;  // tag id, 0 when untagged
  size_t l3 = 14;
  int version = 0;
  uint32_t src4 = 0, dst4 = 0;  // network order
  std::array<uint8_t, 16> src6{}, dst6{};
  uint8_t proto = 0;
  uint16_t sport = 0, dport = 0;  // network order; ICMP echo: identifier, type
  size_t ttl_off = 0;
};

uint16_t load16(const Bytes& b, size_t off) {
  uint16_t v;
  std::memcpy(&v, &b[off], 2);
  return v;
}

Frame parse(const Bytes& b) {
  Frame f;
  if (b.size() < 14) throw std::runtime_error("frame shorter than Ethernet");
  std::memcpy(f.dst.data(), &b[0], 6);
  std::memcpy(f.src.data(), &b[6], 6);
  uint16_t type = static_cast<uint16_t>(b[12] << 8 | b[13]);
  if (type == 0x8100) {
    f.vlan = static_cast<uint16_t>((b[14] << 8 | b[15]) & 0x0fff);
    type = static_cast<uint16_t>(b[16] << 8 | b[17]);
    f.l3 = 18;
  }
  size_t l4;
  if (type == 0x0800) {
    f.version = 4;
    std::memcpy(&f.src4, &b[f.l3 + 12], 4);
    std::memcpy(&f.dst4, &b[f.l3 + 16], 4);
    f.proto = b[f.l3 + 9];
    f.ttl_off = f.l3 + 8;
    l4 = f.l3 + (b[f.l3] & 0x0f) * 4u;
  } else if (type == 0x86dd) {
    f.version = 6;
    std::memcpy(f.src6.data(), &b[f.l3 + 8], 16);
    std::memcpy(f.dst6.data(), &b[f.l3 + 24], 16);
    f.proto = b[f.l3 + 6];
    f.ttl_off = f.l3 + 7;
    l4 = f.l3 + 40;
  } else {
    throw std::runtime_error("not IP");
  }
  if (f.proto == 1 || f.proto == 58) {
    f.sport = load16(b, l4 + 4);
    f.dport = __builtin_bswap16(b[l4]);
  } else {
    f.sport = load16(b, l4);
    f.dport = load16(b, l4 + 2);
  }
  return f;
}

// TTL or hop limit, and the IPv4 header checksum that covers it (no transport checksum does).
Bytes with_ttl(Bytes b, const Frame& f, uint8_t ttl) {
  b[f.ttl_off] = ttl;
  if (f.version == 4) {
    const size_t hlen = (b[f.l3] & 0x0f) * 4u;
    b[f.l3 + 10] = b[f.l3 + 11] = 0;
    const uint16_t c = csum::finish(csum::sum_bytes(&b[f.l3], hlen));
    b[f.l3 + 10] = static_cast<uint8_t>(c >> 8);
    b[f.l3 + 11] = static_cast<uint8_t>(c);
  }
  return b;
}

Bytes with_macs(Bytes b, const Frame& like) {
  std::memcpy(&b[0], like.dst.data(), 6);
  std::memcpy(&b[6], like.src.data(), 6);
  return b;
}

EtherAddr ether(const Mac& m) {
  EtherAddr a;
  std::memcpy(a.addr_bytes, m.data(), 6);
  return a;
}

}  // namespace

std::vector<BenchCase> bench_cases(const std::vector<std::string>& punts, std::string& error) {
  std::vector<BenchCase> cases;
  try {
    for (const Golden& g : golden_forwarding_cases()) {
      const Frame in = parse(g.in);
      const Frame out = parse(g.out);
      BenchCase c;
      c.name = g.name;
      c.in_port = g.in_port;
      c.frame = with_ttl(g.in, in, kTtl);
      c.out_port = g.out_port;
      c.once = with_ttl(with_macs(g.out, in), out, kTtl - 1);
      c.twice = with_ttl(g.in, in, kTtl - 2);
      cases.push_back(std::move(c));
    }
  } catch (const std::exception& e) {
    error = std::string("a forwarding case: ") + e.what();
    return {};
  }
  const std::vector<Golden> exceptions = golden_exception_cases();
  for (const std::string& name : punts) {
    auto it = std::find_if(exceptions.begin(), exceptions.end(),
                           [&](const Golden& g) { return g.name == name; });
    if (it == exceptions.end()) {
      error = "no exception case \"" + name + "\" in the golden table";
      return {};
    }
    cases.push_back({it->name, it->in_port, it->in, std::nullopt, {}, {}, it->reason});
  }
  return cases;
}

std::string install_bench_state(FastPath& engine) {
  try {
    install_golden_state(engine);
  } catch (const std::exception& e) {
    return e.what();
  }
  struct Inverse {
    FlowKey4 key;
    Rewrite rewrite;
    uint32_t addr;
    uint16_t port;
    NextHop nh;
  };
  std::map<uint16_t, std::pair<Mac, Mac>> readdressed;  // next hop -> (src, dst) MACs
  std::vector<Inverse> inverses;
  const Topology topo = engine.topology();
  try {
    for (const Golden& g : golden_forwarding_cases()) {
      const Frame in = parse(g.in);
      const Frame out = parse(g.out);
      // The next hop the golden flow leaves by is the one that writes the output's MACs and tag.
      std::vector<uint16_t> nhs;
      for (uint16_t i = 0; i < kMaxNextHops; ++i) {
        const NextHop& nh = topo.nexthops[i];
        if (nh.valid && nh.port == *g.out_port && nh.vlan == out.vlan &&
            nh.src_mac == ether(out.src) && nh.dst_mac == ether(out.dst))
          nhs.push_back(i);
      }
      if (nhs.size() != 1)
        return g.name + ": " + std::to_string(nhs.size()) + " next hops write its output";
      const auto [it, fresh] = readdressed.try_emplace(nhs[0], in.src, in.dst);
      if (!fresh && it->second != std::make_pair(in.src, in.dst))
        return g.name + ": next hop " + std::to_string(nhs[0]) + " serves two ingress MACs";
      if (in.version == 6) continue;  // routed: the frame matches its own flow again
      const bool snat = in.src4 != out.src4;
      Inverse inv;
      inv.key = FlowKey4{out.src4, out.dst4, out.sport, out.dport, out.proto, g.in_port, out.vlan};
      inv.rewrite = snat ? Rewrite::snat : Rewrite::dnat;
      inv.addr = snat ? in.src4 : in.dst4;
      inv.port = snat || in.proto == 1 ? in.sport : in.dport;
      inv.nh.port = *g.out_port;
      inv.nh.src_mac = ether(in.src);
      inv.nh.dst_mac = ether(in.dst);
      inv.nh.vlan = in.vlan;
      inv.nh.valid = true;
      inverses.push_back(inv);
    }
  } catch (const std::exception& e) {
    return std::string("a forwarding case: ") + e.what();
  }

  // One next hop per distinct way back.
  std::vector<uint16_t> inverse_nh(inverses.size());
  std::vector<NextHop> added;
  for (size_t i = 0; i < inverses.size(); ++i) {
    const NextHop& want = inverses[i].nh;
    auto same = [&](const NextHop& nh) {
      return nh.port == want.port && nh.vlan == want.vlan && nh.src_mac == want.src_mac &&
             nh.dst_mac == want.dst_mac;
    };
    auto it = std::find_if(added.begin(), added.end(), same);
    if (it == added.end()) it = added.insert(added.end(), want);
    inverse_nh[i] = static_cast<uint16_t>(kFirstInverseNexthop + (it - added.begin()));
  }
  engine.update_topology([&](Topology& t) {
    for (const auto& [nh, macs] : readdressed) {
      t.nexthops[nh].src_mac = ether(macs.first);
      t.nexthops[nh].dst_mac = ether(macs.second);
    }
    for (size_t i = 0; i < added.size(); ++i) t.nexthops[kFirstInverseNexthop + i] = added[i];
  });

  // The boundary installs directions in pairs; an inverse flow needs one, so its partner is
  // parked on the USB port, which no case enters by. Cases that share a flow share its inverse.
  std::vector<FlowKey4> installed;
  for (size_t i = 0; i < inverses.size(); ++i) {
    const Inverse& inv = inverses[i];
    if (std::find(installed.begin(), installed.end(), inv.key) != installed.end()) continue;
    FlowKey4 parked = inv.key;
    parked.port = lab::kUsb;
    const int rc =
        engine.install(plan_nat44(inv.key, inv.rewrite, inv.addr, inv.port, inverse_nh[i]),
                       plan_nat44(parked, inv.rewrite, inv.addr, inv.port, inverse_nh[i]));
    if (rc != 0) return "cannot install an inverse flow: " + std::string(std::strerror(-rc));
    installed.push_back(inv.key);
  }
  return "";
}

}  // namespace tp::test
