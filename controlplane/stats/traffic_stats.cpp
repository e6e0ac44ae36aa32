#include "traffic_stats.hpp"

namespace tp {

using Json = nlohmann::json;

std::string TrafficStats::install(const std::vector<std::string>& downstreams, bool ipv6_tracked) {
  return kernel_.install(downstreams, ipv6_tracked);
}

TrafficBucket TrafficStats::bucket(const IpAddr& client, const std::string& iface,
                                   uint32_t mark) const {
  TrafficBucket b{client, iface, "", conf::Roaming::home};
  if (const auto u = scene_.uplinks.find(iface); u != scene_.uplinks.end()) {
    b.uplink = u->second.name;
    b.roaming = u->second.roaming;
  }
  if (scene_.session_mask)
    if (const auto s = scene_.session_by_mark.find(mark & scene_.session_mask);
        s != scene_.session_by_mark.end())
      b.session = s->second;
  return b;
}

// The client is on the side that arrives from a downstream port; the other side is the uplink.
std::optional<std::pair<TrafficBucket, Traffic>> TrafficStats::of_flow(const FlowView& v) const {
  auto downstream = [&](uint8_t p) {
    return p < scene_.ports.size() && scene_.ports[p].downstream;
  };
  const bool orig_up = downstream(v.orig_in);
  if (orig_up == downstream(v.reply_in)) return std::nullopt;  // not a client's flow
  const uint8_t uplink_port = orig_up ? v.reply_in : v.orig_in;
  if (uplink_port >= scene_.ports.size()) return std::nullopt;
  const IpAddr& client = orig_up ? v.ct->orig.src : v.ct->reply.src;
  const auto b = bucket(client, scene_.ports[uplink_port].name, v.ct->mark);
  Traffic t = orig_up ? Traffic{v.orig_packets, v.orig_bytes, v.reply_packets, v.reply_bytes}
                      : Traffic{v.reply_packets, v.reply_bytes, v.orig_packets, v.orig_bytes};
  return std::pair{b, t};
}

void TrafficStats::flow_removed(const FlowView& v) {
  if (const auto f = of_flow(v)) ledger_.flow_gone(CtKey::of(*v.ct), f->first, f->second);
}

void TrafficStats::sample(const FlowManager& flows) {
  flows.for_each([&](const FlowView& v) {
    if (const auto f = of_flow(v)) ledger_.flow(CtKey::of(*v.ct), f->first, f->second);
  });
  ledger_.sweep_flows();
  const auto counts = kernel_.read(error_);
  for (const auto& c : counts) {
    const Traffic t = c.up ? Traffic{c.packets, c.bytes, 0, 0} : Traffic{0, 0, c.packets, c.bytes};
    ledger_.kernel(c.element, bucket(c.client, c.iface, c.mark), t);
  }
  if (error_.empty()) ledger_.sweep_kernel();  // a failed reading is not an absence
}

namespace {

Json counts(const Traffic& t) {
  return {{"up_packets", t.up_packets},
          {"up_bytes", t.up_bytes},
          {"down_packets", t.down_packets},
          {"down_bytes", t.down_bytes}};
}

Json session_name(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

}  // namespace

Json TrafficStats::clients_json(const std::function<ClientPlace(const IpAddr&)>& place) const {
  std::map<IpAddr, std::pair<Traffic, Json>> by_client;
  for (const auto& [b, t] : ledger_.buckets()) {
    auto& [total, rows] = by_client[b.client];
    total += t;
    Json row = counts(t);
    row["uplink"] = b.uplink;
    row["session"] = session_name(b.session);
    row["roaming"] = conf::to_string(b.roaming);
    rows.push_back(row);
  }
  Json out = Json::array();
  for (const auto& [client, entry] : by_client) {
    const ClientPlace p = place(client);
    Json c = counts(entry.first);
    c["address"] = client.str();
    c["mac"] = p.mac.empty() ? Json(nullptr) : Json(p.mac);
    c["downstream"] = p.downstream.empty() ? Json(nullptr) : Json(p.downstream);
    c["traffic"] = entry.second;
    out.push_back(c);
  }
  return out;
}

std::map<std::string, uint64_t> TrafficStats::session_totals() const {
  std::map<std::string, uint64_t> out;
  for (const auto& [b, t] : ledger_.buckets()) out[b.session] += t.up_bytes + t.down_bytes;
  return out;
}

Json TrafficStats::sessions_json() const {
  // By session, then by (uplink, roaming): "home vs roaming" is one bucket split.
  std::map<std::string, std::map<std::pair<std::string, conf::Roaming>, Traffic>> by_session;
  for (const auto& [b, t] : ledger_.buckets()) by_session[b.session][{b.uplink, b.roaming}] += t;
  Json out = Json::array();
  for (const auto& [session, rows] : by_session) {
    Traffic total;
    Json traffic = Json::array();
    for (const auto& [where, t] : rows) {
      total += t;
      Json row = counts(t);
      row["uplink"] = where.first;
      row["roaming"] = conf::to_string(where.second);
      traffic.push_back(row);
    }
    Json s = counts(total);
    s["session"] = session_name(session);
    s["traffic"] = traffic;
    out.push_back(s);
  }
  return out;
}

void TrafficStats::metrics(std::ostream& out) const {
  std::map<std::string, Traffic> by_labels;
  for (const auto& [b, t] : ledger_.buckets())
    by_labels["session=\"" + (b.session.empty() ? std::string() : b.session) + "\",uplink=\"" +
              b.uplink + "\",roaming=\"" + conf::to_string(b.roaming) + "\""] += t;
  auto family = [&](const char* name, const char* help, uint64_t Traffic::*up,
                    uint64_t Traffic::*down) {
    out << "# HELP tetherpath_" << name << ' ' << help << "\n# TYPE tetherpath_" << name
        << " counter\n";
    for (const auto& [labels, t] : by_labels) {
      out << "tetherpath_" << name << '{' << labels << ",direction=\"up\"} " << t.*up << '\n';
      out << "tetherpath_" << name << '{' << labels << ",direction=\"down\"} " << t.*down << '\n';
    }
  };
  family("session_ip_bytes_total",
         "IP bytes of the session's clients (empty session: the default policy), fast path and "
         "kernel path.",
         &Traffic::up_bytes, &Traffic::down_bytes);
  family("session_packets_total", "Packets of the session's clients, fast path and kernel path.",
         &Traffic::up_packets, &Traffic::down_packets);
}

}  // namespace tp
