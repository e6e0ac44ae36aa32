// Mirrors the kernel's conntrack table: an event socket (NEW/UPDATE/DESTROY) opened first with a
// large receive buffer, then a full dump; both feed idempotent upserts. When the kernel drops
// events (ENOBUFS) the buffer grows, up to a cap, and the table is resynchronised by a dump whose
// end purges what the kernel no longer has (conntrackd's recovery).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "conntrack_entry.hpp"

struct mnl_socket;
struct nlmsghdr;

namespace tp {

class ConntrackMirror {
 public:
  struct Sink {
    std::function<void(const CtEntry&)> upsert;     // NEW, UPDATE, or seen in a dump
    std::function<void(const CtEntry&)> destroyed;  // DESTROY
    std::function<void()> resync_begin;             // a dump that replaces everything starts
    std::function<void()> resync_end;               // ...and ended: purge what it did not upsert
    std::function<void()> resync_failed;            // ...or could not end: keep the rest
  };

  // Throws std::runtime_error (no permission, no conntrack in this kernel).
  ConntrackMirror(Sink sink, int rcvbuf_bytes, int rcvbuf_max_bytes);
  ~ConntrackMirror();
  ConntrackMirror(const ConntrackMirror&) = delete;
  ConntrackMirror& operator=(const ConntrackMirror&) = delete;

  int event_fd() const;
  void on_readable();  // drains pending events; handles ENOBUFS
  // resync_begin, a complete dump, resync_end. An interrupted or failed dump is run again (the
  // socket reopened after a failure) a few times; if none completes, nothing is purged, false is
  // returned and resync_pending() stays true until a later resync() completes.
  bool resync();
  bool resync_pending() const { return resync_pending_; }
  // The kernel's entries whose mark has `mark` in the bits of `mask` (one filtered dump; nullopt
  // if it failed). The sink is not told.
  std::optional<std::vector<CtEntry>> marked(uint32_t mark, uint32_t mask);

  // The kernel echoes our own conntrack updates (keepalives, liberal marks) as UPDATE events, a
  // flood that would overrun the event socket on every keepalive round: a socket filter drops
  // events caused by this netlink port id before they are queued.
  void ignore_events_from(uint32_t portid);

  uint64_t events = 0, overruns = 0, resyncs = 0;
  uint64_t dump_restarts = 0, resync_failures = 0, stale_dropped = 0;
  int rcvbuf_bytes() const { return rcvbuf_; }

 private:
  enum class Dump { complete, interrupted, failed };
  Dump dump();
  void handle(const nlmsghdr* nlh, bool from_dump);
  void open_dump_socket();

  Sink sink_;
  mnl_socket* events_ = nullptr;
  mnl_socket* dump_ = nullptr;
  int rcvbuf_;
  int rcvbuf_max_;
  uint32_t seq_ = 1;
  bool resync_pending_ = false;
};

// Sets net.netfilter.nf_conntrack_events to 1 (with the default 2 the kernel sends no DESTROY for
// entries created while no listener existed). Returns what it found and set, for the log.
std::string enable_conntrack_events();

}  // namespace tp
