#include "flow_manager.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "keepalive.hpp"

namespace tp {
namespace {

// Waiting for a neighbour is bounded; the kernel resolves it while it still forwards the flow.
constexpr std::size_t kMaxPending = 65536;

template <class Key>
Key make_key(const CtTuple& t, uint8_t proto, uint8_t port) {
  Key k{};
  if constexpr (std::is_same_v<Key, FlowKey4>) {
    k.src = t.src.v4_be();
    k.dst = t.dst.v4_be();
  } else {
    std::memcpy(k.src.data(), t.src.bytes.data(), 16);
    std::memcpy(k.dst.data(), t.dst.bytes.data(), 16);
  }
  k.sport = t.sport;
  k.dport = t.dport;
  k.proto = proto;
  k.port = port;
  k.vlan = 0;
  return k;
}

FlowPlan4 plan4(const FlowKey4& key, const Direction& d, uint16_t nh) {
  return plan_nat44(key, d.rewrite, d.nat_addr.v4_be(), d.nat_port, nh);
}

}  // namespace

FlowManager::FlowManager(FastPath& engine, TopologySync& topo, const KernelView& kernel,
                         PolicyConfig cfg, ConntrackWriter* writer,
                         std::function<uint64_t()> clock_ms)
    : engine_(engine),
      topo_(topo),
      kernel_(kernel),
      cfg_(std::move(cfg)),
      writer_(writer),
      clock_ms_(std::move(clock_ms)) {}

uint64_t FlowManager::steady_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

FlowManager::~FlowManager() = default;

bool FlowManager::same_plan(const Decision& a, const Decision& b) {
  auto same = [](const Direction& x, const Direction& y) {
    // The MAC is not part of it: a MAC change updates the shared next hop in place.
    return x.in_port == y.in_port && x.out_port == y.out_port && x.next_hop == y.next_hop &&
           x.mtu == y.mtu && x.rewrite == y.rewrite && x.nat_addr == y.nat_addr &&
           x.nat_port == y.nat_port;
  };
  return same(a.orig, b.orig) && same(a.reply, b.reply);
}

bool FlowManager::install(const CtEntry& e, const Decision& d) {
  Flow f;
  f.ct = e;
  f.plan = d;
  f.refreshed_ms = clock_ms_();
  f.known_timeout_s = e.timeout;
  f.nh_orig = topo_.acquire(d.orig.out_port, d.orig.next_hop, d.orig.next_hop_mac, d.orig.mtu);
  f.nh_reply = topo_.acquire(d.reply.out_port, d.reply.next_hop, d.reply.next_hop_mac, d.reply.mtu);
  // From the first packet the fast path carries, the kernel sees only this flow's FIN/RST and
  // other punts, not the window updates in between: its TCP tracking must already be liberal,
  // or it marks the next punted packet INVALID and skips NAT (the box then answers it with a
  // RST from the NAT address: an ACK of data the fast path carried, punted because it arrived
  // between the install of one direction and the other). nft_flow_offload_eval does the same.
  // One write per TCP install, before it: a kernel engine installs in microseconds.
  if (e.proto == IPPROTO_TCP && writer_ && f.nh_orig && f.nh_reply) writer_->apply({{e, 0, true}});
  int rc = -ENOSPC;
  if (f.nh_orig && f.nh_reply) {
    if (e.family == AF_INET) {
      const auto ko = make_key<FlowKey4>(e.orig, e.proto, d.orig.in_port);
      const auto kr = make_key<FlowKey4>(e.reply, e.proto, d.reply.in_port);
      rc = engine_.install(plan4(ko, d.orig, f.nh_orig), plan4(kr, d.reply, f.nh_reply));
    } else {
      const auto ko = make_key<FlowKey6>(e.orig, e.proto, d.orig.in_port);
      const auto kr = make_key<FlowKey6>(e.reply, e.proto, d.reply.in_port);
      rc = engine_.install(FlowPlan6{ko, f.nh_orig}, FlowPlan6{kr, f.nh_reply});
    }
  }
  if (rc != 0) {
    topo_.release(f.nh_orig);
    topo_.release(f.nh_reply);
    ++stats_.install_failed;
    return false;
  }
  ++stats_.installed;
  flows_.insert_or_assign(CtKey::of(e), std::move(f));
  return true;
}

template <typename Key>
std::pair<Key, Key> FlowManager::keys_of(const Flow& f) {
  const CtEntry& e = f.ct;
  return {make_key<Key>(e.orig, e.proto, f.plan.orig.in_port),
          make_key<Key>(e.reply, e.proto, f.plan.reply.in_port)};
}

FlowView FlowManager::view(const Flow& f, const FlowUsage& o, const FlowUsage& r) {
  return FlowView{&f.ct,
                  f.plan.orig.in_port,
                  f.plan.reply.in_port,
                  o.packets,
                  o.bytes,
                  r.packets,
                  r.bytes,
                  std::max(o.last_used_ms, r.last_used_ms)};
}

void FlowManager::remove(Map::iterator it, bool give_back) {
  const Flow& f = it->second;
  const CtEntry& e = f.ct;
  auto gone = [&](const auto& keys) {
    if (on_removed) {
      // Read just before removal: what a worker forwards in between is not counted.
      on_removed(view(f, engine_.usage(keys.first).value_or(FlowUsage{}),
                      engine_.usage(keys.second).value_or(FlowUsage{})));
    }
    engine_.remove(keys.first, keys.second);
  };
  if (e.family == AF_INET)
    gone(keys_of<FlowKey4>(f));
  else
    gone(keys_of<FlowKey6>(f));
  topo_.release(f.nh_orig);
  topo_.release(f.nh_reply);
  ++stats_.removed;
  if (give_back && e.proto == IPPROTO_TCP) hand_back({e});
  flows_.erase(it);
}

// The kernel missed the window updates of everything the fast path carried: without this its
// TCP tracking would mark the next packets INVALID (conntrackd does the same on commit). Flows
// are already liberal from their install; this covers entries a restart found offloaded by a
// previous instance and keeps hand-back correct on its own.
void FlowManager::hand_back(const std::vector<CtEntry>& tcp_entries) {
  if (!writer_ || tcp_entries.empty()) return;
  std::vector<ConntrackWriter::Update> updates;
  for (const CtEntry& e : tcp_entries) updates.push_back({e, 0, true});
  writer_->apply(updates);
  stats_.handed_back += tcp_entries.size();
}

// Fields an event did not carry keep the values last seen for the entry.
CtEntry FlowManager::complete(const CtEntry& e, const CtEntry* known) {
  CtEntry out = e;
  if (!known) return out;
  if (!(e.present & CtEntry::kStatus)) out.status = known->status;
  if (!(e.present & CtEntry::kTcpState)) out.tcp_state = known->tcp_state;
  if (!(e.present & CtEntry::kMark)) out.mark = known->mark;
  out.present = known->present | e.present;
  return out;
}

void FlowManager::upsert(const CtEntry& event) {
  if (resyncing_) {  // decided with the rest of the dump, its route lookups batched
    resync_batch_.push_back(event);
    return;
  }
  ++stats_.upserts;
  const CtKey key = CtKey::of(event);
  auto it = flows_.find(key);
  const auto pit = pending_.find(key);
  const auto rit = parked_.find(key);
  const CtEntry* known = it != flows_.end()      ? &it->second.ct
                         : pit != pending_.end() ? &pit->second
                         : rit != parked_.end()  ? &rit->second
                                                 : nullptr;
  const CtEntry e = complete(event, known);
  // Without its status (or a TCP entry without its state) an unknown entry cannot be judged; the
  // event that sets ASSURED carries both.
  if (!(e.present & CtEntry::kStatus) ||
      (e.proto == IPPROTO_TCP && !(e.present & CtEntry::kTcpState))) {
    ++stats_.incomplete;
    return;
  }
  const Decision d = decide(e, kernel_, cfg_);
  if (it != flows_.end()) {
    it->second.seen = true;
    if (d.verdict == Decision::offload && same_plan(d, it->second.plan)) {
      it->second.ct = e;  // status and state move on
      it->second.plan = d;
      if (e.timeout) {  // the kernel said how long it keeps the entry from now
        it->second.refreshed_ms = clock_ms_();
        it->second.known_timeout_s = e.timeout;
      }
      ++stats_.unchanged;
      return;
    }
    // Leaving the fast path while alive needs a hand-back, unless it is reinstalled right away or
    // the kernel already saw the FIN/RST that moved TCP past ESTABLISHED.
    remove(it, d.verdict != Decision::offload && d.reason != "tcp_not_established");
  }
  pending_.erase(key);
  parked_.erase(key);
  if (d.verdict == Decision::offload) {
    install(e, d);
    return;
  }
  if (d.verdict == Decision::wait_neighbour && pending_.size() < kMaxPending) pending_[key] = e;
  if (d.verdict == Decision::wait_route && parked_.size() < kMaxPending) parked_[key] = e;
  ++stats_.refused[std::string(d.reason)];
}

std::vector<CtEntry> FlowManager::take_where(
    const std::function<bool(const CtEntry&, int out_ifindex)>& pick) {
  std::vector<Map::iterator> hits;
  std::vector<const Flow*> taken_flows;
  for (auto it = flows_.begin(); it != flows_.end(); ++it)
    if (pick(it->second.ct, it->second.plan.orig.out_ifindex)) {
      hits.push_back(it);
      taken_flows.push_back(&it->second);
    }
  if (on_removed) {  // read just before removal, as remove() does, but in one pass per family
    const auto use = usage_of(taken_flows);
    for (std::size_t i = 0; i < taken_flows.size(); ++i)
      on_removed(view(*taken_flows[i], use[i].first, use[i].second));
  }
  std::vector<std::pair<FlowKey4, FlowKey4>> pairs4;
  std::vector<std::pair<FlowKey6, FlowKey6>> pairs6;
  for (const Flow* f : taken_flows) {
    if (f->ct.family == AF_INET)
      pairs4.push_back(keys_of<FlowKey4>(*f));
    else
      pairs6.push_back(keys_of<FlowKey6>(*f));
  }
  engine_.remove_many(std::span<const std::pair<FlowKey4, FlowKey4>>(pairs4));
  engine_.remove_many(std::span<const std::pair<FlowKey6, FlowKey6>>(pairs6));
  std::vector<CtEntry> taken;
  taken.reserve(hits.size());
  for (const auto it : hits) {
    topo_.release(it->second.nh_orig);
    topo_.release(it->second.nh_reply);
    ++stats_.removed;
    taken.push_back(it->second.ct);
    flows_.erase(it);
  }
  return taken;
}

std::optional<int> FlowManager::out_ifindex(const CtEntry& e) const {
  const auto it = flows_.find(CtKey::of(e));
  if (it == flows_.end()) return std::nullopt;
  return it->second.plan.orig.out_ifindex;
}

void FlowManager::destroyed(const CtEntry& e) {
  ++stats_.destroys;
  const CtKey key = CtKey::of(e);
  pending_.erase(key);
  parked_.erase(key);
  if (auto it = flows_.find(key); it != flows_.end()) remove(it, false);
}

void FlowManager::resync_begin() {
  for (auto& [k, f] : flows_) f.seen = false;
  pending_.clear();
  parked_.clear();
  resync_batch_.clear();
  resyncing_ = true;
}

void FlowManager::resync_abandoned() {
  resyncing_ = false;
  std::vector<CtEntry> batch;
  batch.swap(resync_batch_);  // its memory goes too: a dump can be large
  upsert_all(batch);
}

void FlowManager::resync_end() {
  resync_abandoned();  // what the dump brought is decided before the rest is purged
  for (auto it = flows_.begin(); it != flows_.end();) {
    auto next = std::next(it);
    if (!it->second.seen) remove(it, false);  // the kernel no longer has it
    it = next;
  }
}

void FlowManager::neighbour_changed(int ifindex, const IpAddr& addr, std::optional<MacAddr> mac) {
  if (mac) {
    ++stats_.neighbour_updates;
    for (const auto& [port_if, role] : cfg_.ports)
      if (port_if == ifindex) topo_.update_mac(role.port, addr, *mac);
    // Flows that were waiting for this neighbour can go now.
    std::vector<CtEntry> ready;
    for (const auto& [k, e] : pending_) ready.push_back(e);
    for (const CtEntry& e : ready) upsert(e);
    return;
  }
  // Gone: its flows go back to the kernel, which will resolve it again or drop them. They wait
  // for it (or for another route) here, as a flow that never had it would.
  for (auto it = flows_.begin(); it != flows_.end();) {
    auto next = std::next(it);
    const Decision& p = it->second.plan;
    if ((p.orig.out_ifindex == ifindex && p.orig.next_hop == addr) ||
        (p.reply.out_ifindex == ifindex && p.reply.next_hop == addr)) {
      if (pending_.size() < kMaxPending) pending_[it->first] = it->second.ct;
      remove(it, true);
    }
    it = next;
  }
}

void FlowManager::reevaluate_all() {
  std::vector<CtEntry> all;
  all.reserve(flows_.size() + pending_.size() + parked_.size());
  for (const auto& [k, f] : flows_) all.push_back(f.ct);
  for (const auto& [k, e] : pending_) all.push_back(e);
  for (const auto& [k, e] : parked_) all.push_back(e);
  upsert_all(all);
}

void FlowManager::upsert_all(const std::vector<CtEntry>& all) {
  // A flow's decision asks the kernel twice, the reply's question depending on the original's
  // answer: two dry runs of every decision collect the questions of each round and fetch them
  // in batches, and the real pass then finds every answer fetched (decide() has no effects).
  if (kernel_.batches_lookups()) {
    kernel_.collect_lookups();
    for (int round = 0; round < 2; ++round) {
      for (const CtEntry& e : all) decide(e, kernel_, cfg_);
      if (kernel_.fetch_lookups() == 0) break;
    }
    kernel_.lookups_collected();
  }
  for (const CtEntry& e : all) upsert(e);
  kernel_.forget_lookups();
}

std::vector<CtEntry> FlowManager::port_down(uint8_t port) {
  std::vector<CtEntry> gone;
  for (auto it = flows_.begin(); it != flows_.end();) {
    auto next = std::next(it);
    const Decision& p = it->second.plan;
    if (p.orig.in_port == port || p.orig.out_port == port) {
      gone.push_back(it->second.ct);
      remove(it, true);
    }
    it = next;
  }
  return gone;
}

std::vector<CtEntry> FlowManager::take_natted_to(const std::vector<IpAddr>& addrs) {
  std::vector<CtEntry> out;
  for (auto* waiting : {&pending_, &parked_})
    for (auto it = waiting->begin(); it != waiting->end();) {
      const CtEntry& e = it->second;
      const bool natted = e.family == AF_INET && !(e.reply.dst == e.orig.src);
      if (natted && std::find(addrs.begin(), addrs.end(), e.reply.dst) != addrs.end()) {
        out.push_back(e);
        it = waiting->erase(it);
      } else {
        ++it;
      }
    }
  return out;
}

std::vector<std::pair<FlowUsage, FlowUsage>> FlowManager::usage_of(
    const std::vector<const Flow*>& flows) const {
  std::vector<FlowKey4> keys4;
  std::vector<FlowKey6> keys6;
  for (const Flow* f : flows) {
    if (f->ct.family == AF_INET) {
      const auto [o, r] = keys_of<FlowKey4>(*f);
      keys4.push_back(o);
      keys4.push_back(r);
    } else {
      const auto [o, r] = keys_of<FlowKey6>(*f);
      keys6.push_back(o);
      keys6.push_back(r);
    }
  }
  std::vector<std::optional<FlowUsage>> use4(keys4.size()), use6(keys6.size());
  engine_.read_usage(std::span<const FlowKey4>(keys4), std::span(use4));
  engine_.read_usage(std::span<const FlowKey6>(keys6), std::span(use6));
  std::vector<std::pair<FlowUsage, FlowUsage>> out;
  out.reserve(flows.size());
  size_t i4 = 0, i6 = 0;
  for (const Flow* f : flows) {
    auto& use = f->ct.family == AF_INET ? use4 : use6;
    size_t& i = f->ct.family == AF_INET ? i4 : i6;
    out.emplace_back(use[i].value_or(FlowUsage{}), use[i + 1].value_or(FlowUsage{}));
    i += 2;
  }
  return out;
}

std::vector<std::pair<FlowUsage, FlowUsage>> FlowManager::usage_of_all() const {
  std::vector<const Flow*> all;
  all.reserve(flows_.size());
  for (const auto& [k, f] : flows_) all.push_back(&f);
  return usage_of(all);
}

void FlowManager::keepalive_round(ConntrackWriter& writer, const ConntrackTimeouts& timeouts,
                                  uint32_t interval_s, uint64_t now_ms) {
  ++stats_.keepalive_rounds;
  const uint32_t engine_ms = engine_.clock_ms();
  std::vector<ConntrackWriter::Update> updates;
  std::vector<std::pair<CtKey, uint32_t>> sent;  // the flow, and the timeout set (0: a probe)
  const std::vector<std::pair<FlowUsage, FlowUsage>> all = usage_of_all();
  size_t at = 0;
  for (auto& [k, f] : flows_) {
    const auto [o, r] = all[at++];
    const FlowUsage use{o.packets + r.packets, o.bytes + r.bytes,
                        std::max(o.last_used_ms, r.last_used_ms)};
    const bool active =
        use.packets != f.at_refresh.packets || use.last_used_ms != f.at_refresh.last_used_ms;
    const uint32_t timeout = timeouts.for_entry(f.ct);
    const uint64_t since = now_ms >= f.refreshed_ms ? now_ms - f.refreshed_ms : 0;
    switch (keepalive_step(active, since, timeout, f.known_timeout_s, interval_s)) {
      case KeepaliveStep::none:
        continue;
      case KeepaliveStep::refresh: {
        const uint32_t left = refreshed_timeout_s(timeout, engine_ms, use.last_used_ms);
        f.at_refresh = use;
        updates.push_back({f.ct, left, false});
        sent.emplace_back(k, left);
        break;
      }
      case KeepaliveStep::probe:
        // No change: an entry that expired answers ENOENT (the kernel skips expired entries
        // on lookup and reaps them then); a live one, kept by packets the kernel saw itself,
        // is asked again a round later.
        updates.push_back({f.ct, 0, false});
        sent.emplace_back(k, 0);
        ++stats_.keepalive_probes;
        break;
    }
  }
  if (updates.empty()) return;
  const std::vector<int> results = writer.apply(updates);
  for (std::size_t i = 0; i < results.size(); ++i) {
    auto it = flows_.find(sent[i].first);
    if (it == flows_.end()) continue;
    if (results[i] == -ENOENT) {
      ++stats_.keepalive_gone;  // the kernel dropped it meanwhile (its DESTROY may be lost)
      remove(it, false);
      continue;
    }
    if (results[i] != 0 || sent[i].second == 0) continue;
    ++stats_.keepalives;
    it->second.refreshed_ms = now_ms;
    it->second.known_timeout_s = sent[i].second;
  }
}

void FlowManager::release_all() {
  std::vector<CtEntry> tcp;
  for (auto it = flows_.begin(); it != flows_.end();) {
    auto next = std::next(it);
    if (it->second.ct.proto == IPPROTO_TCP) tcp.push_back(it->second.ct);
    remove(it, false);
    it = next;
  }
  hand_back(tcp);
  pending_.clear();
  parked_.clear();
}

void FlowManager::set_config(PolicyConfig cfg, bool reevaluate) {
  cfg_ = std::move(cfg);
  if (reevaluate) reevaluate_all();
}

void FlowManager::for_each(const std::function<void(const FlowView&)>& fn) const {
  const std::vector<std::pair<FlowUsage, FlowUsage>> all = usage_of_all();
  size_t at = 0;
  for (const auto& [k, f] : flows_) {
    const auto& [o, r] = all[at++];
    fn(view(f, o, r));
  }
}

}  // namespace tp
