#include "port.hpp"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_version.h>

#include <linux/if_packet.h>
#include <net/if.h>
#include <poll.h>
#include <sys/socket.h>
#include <xdp/xsk.h>

#include <cstring>
#include <fstream>

#include "af_packet_fanout.hpp"

namespace tp::hw {
namespace {

std::string devargs_value(const std::string& device, const std::string& key) {
  const std::string needle = key + "=";
  std::size_t at = device.find(needle);
  while (at != std::string::npos && at > 0 && device[at - 1] != ',')
    at = device.find(needle, at + 1);
  if (at == std::string::npos) return "";
  const std::size_t end = device.find(',', at);
  return device.substr(at + needle.size(),
                       end == std::string::npos ? std::string::npos : end - at - needle.size());
}

}  // namespace

std::unique_ptr<Port> Port::open(const PortSpec& spec, rte_mempool* pool, std::string& error) {
  std::unique_ptr<Port> p(new Port());
  p->device_name_ = spec.device.substr(0, spec.device.find(','));
  p->kernel_iface_ = devargs_value(spec.device, "iface");
  const std::string where = "port " + spec.name + " (" + spec.device + ")";

  if (rte_eth_dev_get_port_by_name(p->device_name_.c_str(), &p->id_) != 0) {
    if (rte_dev_probe(spec.device.c_str()) != 0 ||
        rte_eth_dev_get_port_by_name(p->device_name_.c_str(), &p->id_) != 0) {
      error = where + ": cannot open the device (see the EAL messages above)";
      p->device_name_.clear();  // nothing to remove
      return nullptr;
    }
  }

  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(p->id_, &info) != 0) {
    error = where + ": cannot read device information";
    return nullptr;
  }
  p->device_ = info.device;
  if (spec.rx_queues > info.max_rx_queues || spec.tx_queues > info.max_tx_queues) {
    error = where + ": needs " + std::to_string(spec.rx_queues) + " RX and " +
            std::to_string(spec.tx_queues) + " TX queues, the device has " +
            std::to_string(info.max_rx_queues) + " and " + std::to_string(info.max_tx_queues);
    return nullptr;
  }
  rte_eth_conf conf{};
  conf.rxmode.mtu = spec.mtu;
  if (spec.rx_queues > 1) {
    const uint64_t hf =
        info.flow_type_rss_offloads & (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP);
    if (hf) {
      conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
      conf.rx_adv_conf.rss_conf.rss_hf = hf;
    }
  }
  int rc = rte_eth_dev_configure(p->id_, spec.rx_queues, spec.tx_queues, &conf);
  if (rc != 0) {
    error = where + ": configure failed: " + std::strerror(-rc);
    return nullptr;
  }
  const int socket = rte_eth_dev_socket_id(p->id_);
  for (uint16_t q = 0; q < spec.rx_queues; ++q) {
    if ((rc = rte_eth_rx_queue_setup(p->id_, q, kRxDescriptors, socket, nullptr, pool)) != 0) {
      error = where + ": RX queue " + std::to_string(q) + ": " + std::strerror(-rc);
      return nullptr;
    }
  }
  for (uint16_t q = 0; q < spec.tx_queues; ++q) {
    if ((rc = rte_eth_tx_queue_setup(p->id_, q, kTxDescriptors, socket, nullptr)) != 0) {
      error = where + ": TX queue " + std::to_string(q) + ": " + std::strerror(-rc);
      return nullptr;
    }
  }
  if (spec.mac) {
    rte_ether_addr a;
    std::memcpy(a.addr_bytes, spec.mac->data(), 6);
    if ((rc = rte_eth_dev_default_mac_addr_set(p->id_, &a)) != 0 && rc != -ENOTSUP) {
      error = where + ": cannot set the MAC address: " + std::strerror(-rc);
      return nullptr;
    }
  }
  if ((rc = rte_eth_dev_start(p->id_)) != 0) {
    error = where + ": start failed: " + std::strerror(-rc);
    return nullptr;
  }
  p->started_ = true;
  // A socket that reassembles IPv4 would cut every datagram larger than a ring frame
  // (af_packet_fanout.hpp); that only happens if the executable does not export its setsockopt.
  if (p->device_name_.rfind("net_af_packet", 0) == 0) {
    for (uint16_t q = 0; q < spec.rx_queues; ++q) {
      const int fd = p->rx_wait_fd(q);
      if (fd >= 0 && af_packet_reassembles(fd)) {
        error = where +
                ": its AF_PACKET socket reassembles IPv4 fragments "
                "(PACKET_FANOUT_FLAG_DEFRAG), so no datagram larger than the MTU would "
                "cross; link the executable with hw/af_packet_fanout.dynlist";
        return nullptr;
      }
    }
  }
  if (p->device_name_.rfind("net_af_xdp", 0) == 0) p->xdp_ = xdp_attachment(p->kernel_iface_);
  rte_eth_promiscuous_enable(p->id_);  // not every PMD can; frames for other MACs are punted anyway
  rte_ether_addr a;
  rte_eth_macaddr_get(p->id_, &a);
  std::memcpy(p->mac_.data(), a.addr_bytes, 6);
  if (spec.mac) p->mac_ = *spec.mac;  // the kernel's TAP carries the configured MAC either way
  return p;
}

Port::~Port() {
  if (device_name_.empty()) return;
  if (started_) rte_eth_dev_stop(id_);
  rte_eth_dev_close(id_);
  if (device_) rte_dev_remove(device_);
}

bool Port::link_up() const {
  if (!kernel_iface_.empty()) {
    std::ifstream carrier("/sys/class/net/" + kernel_iface_ + "/carrier");
    int v = 0;
    return carrier >> v && v == 1;  // reading fails while the interface is down
  }
  rte_eth_link link{};
  return rte_eth_link_get_nowait(id_, &link) == 0 && link.link_status == RTE_ETH_LINK_UP;
}

namespace {

// net_af_packet keeps each queue's PACKET_MMAP socket as the first member of its private queue
// struct (DPDK 22.11 drivers/net/af_packet).
int af_packet_fd(const void* rxq) { return *static_cast<const int*>(rxq); }

// The head of net_af_xdp's struct pkt_rx_queue up to its poll descriptor (DPDK 22.11
// drivers/net/af_xdp/rte_eth_af_xdp.c); fds[0] is the queue's XSK socket.
struct AfXdpRxQueueHead {
  xsk_ring_cons rx;
  void* umem;
  xsk_socket* xsk;
  rte_mempool* mb_pool;
  uint64_t stats[4];  // rx_pkts, rx_bytes, rx_dropped, imissed_offset
  xsk_ring_prod fq;
  xsk_ring_cons cq;
  void* pair;
  pollfd fds[1];
};
int af_xdp_fd(const void* rxq) { return static_cast<const AfXdpRxQueueHead*>(rxq)->fds[0].fd; }

bool socket_of_domain(int fd, int family) {
  int domain = 0;
  socklen_t len = sizeof domain;
  return fd >= 0 && getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) == 0 && domain == family;
}

}  // namespace

// No public API exposes a queue's socket, so the descriptor is read from the PMD's private queue
// struct and verified before use: AF_PACKET, a packet socket bound to this port's interface;
// AF_XDP, only on the DPDK release whose layout is mirrored above, an XSK socket that is also the
// one the queue's xsk handle names. Anything else gets -1 and the worker falls back to timed
// sleeps.
int Port::rx_wait_fd(uint16_t q) const {
  if (kernel_iface_.empty()) return -1;
  // rte_eth_fp_ops is the public fast-path table rte_eth_rx_burst itself reads.
  void* rxq = q < RTE_MAX_QUEUES_PER_PORT ? rte_eth_fp_ops[id_].rxq.data[q] : nullptr;
  if (!rxq) return -1;
  if (device_name_.rfind("net_af_packet", 0) == 0) {
    const int fd = af_packet_fd(rxq);
    if (!socket_of_domain(fd, AF_PACKET)) return -1;
    sockaddr_ll sll{};
    socklen_t len = sizeof sll;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&sll), &len) != 0) return -1;
    return sll.sll_ifindex == static_cast<int>(if_nametoindex(kernel_iface_.c_str())) ? fd : -1;
  }
  if (device_name_.rfind("net_af_xdp", 0) == 0 &&
      std::strncmp(rte_version(), "DPDK 22.11", 10) == 0) {
    const int fd = af_xdp_fd(rxq);
    if (!socket_of_domain(fd, AF_XDP)) return -1;
    return xsk_socket__fd(static_cast<const AfXdpRxQueueHead*>(rxq)->xsk) == fd ? fd : -1;
  }
  return -1;
}

void Port::set_admin(bool up) {
  if (up)
    rte_eth_dev_set_link_up(id_);
  else
    rte_eth_dev_set_link_down(id_);
}

}  // namespace tp::hw
