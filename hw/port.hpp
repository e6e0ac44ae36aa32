// A DPDK ethdev port opened from the configuration: a PCI address or a vdev string
// (net_af_packet, net_af_xdp, net_tap, net_pcap, net_ring, net_null). RX queues as configured
// (RSS across them where the PMD supports it), one TX queue per worker.
#pragma once

#include <rte_ethdev.h>
#include <rte_mempool.h>

#include <array>
#include <memory>
#include <optional>
#include <string>

#include "xdp_attachment.hpp"

namespace tp::hw {

// Descriptors of every RX and TX queue; the packet pool is sized for all of them to be full.
inline constexpr uint16_t kRxDescriptors = 1024, kTxDescriptors = 1024;

struct PortSpec {
  std::string name;    // logical name, for messages
  std::string device;  // PCI address or vdev string
  uint16_t rx_queues = 1;
  uint16_t tx_queues = 1;
  uint16_t mtu = 1500;
  std::optional<std::array<uint8_t, 6>> mac;
};

class Port {
 public:
  // Probes, configures and starts the device. nullptr and `error` (naming the port) on failure;
  // nothing is left behind then.
  static std::unique_ptr<Port> open(const PortSpec& spec, rte_mempool* pool, std::string& error);
  ~Port();  // stops, closes and removes the device
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  uint16_t id() const { return id_; }
  const std::array<uint8_t, 6>& mac() const { return mac_; }

  // Link as the port sees it: the kernel interface's carrier if there is one, else the PMD's.
  bool link_up() const;
  // A descriptor that polls readable when RX queue `q` has frames, so an idle worker can sleep
  // until traffic arrives instead of waking on a timer; -1 where the PMD offers none.
  int rx_wait_fd(uint16_t q) const;
  // AF_XDP ports: the XDP program the PMD attached and its mode, read when the port started.
  const std::optional<XdpAttachment>& xdp() const { return xdp_; }
  // Administrative down/up of the device (for AF_PACKET this downs the kernel interface too, so
  // the far end sees the carrier go).
  void set_admin(bool up);

 private:
  Port() = default;
  uint16_t id_ = 0;
  std::string device_name_;
  rte_device* device_ = nullptr;
  std::string kernel_iface_;
  std::array<uint8_t, 6> mac_{};
  bool started_ = false;
  std::optional<XdpAttachment> xdp_;
};

}  // namespace tp::hw
