// A live copy of the kernel's routing, neighbour, address and link tables (rtnetlink), so the
// control plane answers "which port and which MAC does this address leave through" without a
// syscall per flow. Dumped at start, then followed by events; on lost events (ENOBUFS) the whole
// state is dumped again.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "ip_addr.hpp"
#include "netlink_dump.hpp"
#include "route_lookup.hpp"

struct mnl_socket;
struct nlmsghdr;

namespace tp {

using MacAddr = std::array<uint8_t, 6>;

// What the offload policy needs to know of the kernel; RtnlMirror provides it, tests give tables.
class KernelView {
 public:
  virtual ~KernelView() = default;
  // The main table's route to `dst`: where a connected client lives, where the default points.
  virtual std::optional<RouteResult> route(const IpAddr& dst) const = 0;
  // What the kernel itself does with a forwarded packet (RouteLookup): the decision a flow's
  // fast-path route must equal.
  virtual Forwarding forward(const RouteQuery& q) const = 0;
  virtual bool has_address(int ifindex, const IpAddr& addr) const = 0;
  virtual std::optional<MacAddr> neighbour(int ifindex, const IpAddr& addr) const = 0;
  virtual bool is_local(const IpAddr& addr) const = 0;
  // Every address the box has, on any interface.
  virtual std::vector<IpAddr> local_addresses() const = 0;
  // Resolved neighbours on an interface.
  virtual std::vector<std::pair<IpAddr, MacAddr>> neighbours_of(int ifindex) const = 0;
  // Route lookups in bulk (RouteLookup::collect, fetch, collected, forget); a view without a
  // kernel behind it answers each forward() at once and needs none of it.
  virtual bool batches_lookups() const { return false; }
  virtual void collect_lookups() const {}
  virtual std::size_t fetch_lookups() const { return 0; }
  virtual void lookups_collected() const {}
  virtual void forget_lookups() const {}
};

struct Route {
  IpAddr prefix;
  int len = 0;
  int oif = 0;
  std::optional<IpAddr> gateway;
  uint32_t priority = 0;
  uint32_t mtu = 0;  // RTAX_MTU, 0 when unset
  bool mtu_locked = false;
};

class RtnlMirror : public KernelView {
 public:
  // Called when a neighbour appears, changes MAC or goes away (mac empty).
  using NeighbourChanged = std::function<void(int ifindex, const IpAddr&, std::optional<MacAddr>)>;
  // Called when routes, addresses or links change (flows may need re-evaluation).
  using Changed = std::function<void()>;

  RtnlMirror();  // throws std::runtime_error
  ~RtnlMirror();
  RtnlMirror(const RtnlMirror&) = delete;
  RtnlMirror& operator=(const RtnlMirror&) = delete;

  int event_fd() const;
  // Reads and applies every pending event (non-blocking). Re-dumps everything after ENOBUFS.
  void on_readable();
  void dump_all();

  std::optional<RouteResult> route(const IpAddr& dst) const override;
  Forwarding forward(const RouteQuery& q) const override { return lookup_.forward(q); }
  bool has_address(int ifindex, const IpAddr& addr) const override;
  uint64_t route_lookups() const { return lookup_.lookups; }
  bool batches_lookups() const override { return true; }
  void collect_lookups() const override { lookup_.collect(); }
  std::size_t fetch_lookups() const override { return lookup_.fetch(); }
  void lookups_collected() const override { lookup_.collected(); }
  void forget_lookups() const override { lookup_.forget(); }
  std::optional<MacAddr> neighbour(int ifindex, const IpAddr& addr) const override;
  std::vector<std::pair<IpAddr, MacAddr>> neighbours_of(int ifindex) const override;
  bool is_local(const IpAddr& addr) const override { return local_.count(addr) > 0; }
  std::vector<IpAddr> local_addresses() const override { return {local_.begin(), local_.end()}; }
  std::vector<IpAddr> addresses_of(int ifindex) const;
  int ifindex(const std::string& name) const;

  NeighbourChanged on_neighbour;
  Changed on_change;

  uint64_t events = 0, overruns = 0, dump_restarts = 0;

 private:
  DumpResult dump(int type, int family);
  void handle(const nlmsghdr* nlh, bool from_dump);
  void handle_route(const nlmsghdr* nlh, bool add);
  void handle_neigh(const nlmsghdr* nlh, bool add, bool from_dump);
  // These return whether what the flows are decided by changed: the kernel repeats itself (an
  // address's lifetime refreshed, a feature or a wireless event sending the link again), and
  // every change decides every flow again.
  bool handle_addr(const nlmsghdr* nlh, bool add);
  bool handle_link(const nlmsghdr* nlh, bool add);

  mnl_socket* events_ = nullptr;
  mutable RouteLookup lookup_;  // a question to the kernel, no state of the mirror's
  mnl_socket* query_ = nullptr;
  uint32_t seq_ = 1;
  std::vector<Route> routes_;
  struct NeighKey {
    int ifindex;
    IpAddr addr;
    bool operator<(const NeighKey& o) const {
      return ifindex != o.ifindex ? ifindex < o.ifindex : addr < o.addr;
    }
  };
  std::map<NeighKey, MacAddr> neighbours_;  // usable (resolved) entries only
  std::multimap<int, IpAddr> addrs_;        // ifindex -> address
  std::set<IpAddr> local_;
  std::map<std::string, int> links_;
  // What of a link the flows depend on: its name, kind, flags (up, running), MTU, MAC, operational
  // state and master.
  struct LinkState {
    std::string name, lladdr;
    unsigned type = 0, flags = 0;
    uint32_t mtu = 0, master = 0;
    uint8_t operstate = 0;
    bool operator==(const LinkState&) const = default;
  };
  std::map<int, LinkState> link_states_;
  // Interfaces without a link layer (raw IP: rmnet, tunnels): every address on them is reached
  // without a neighbour, by an all-zero MAC the engine never writes.
  std::set<int> rawip_links_;
};

}  // namespace tp
