#include "traffic_ledger.hpp"

namespace tp {

Traffic& Traffic::operator+=(const Traffic& o) {
  up_packets += o.up_packets;
  up_bytes += o.up_bytes;
  down_packets += o.down_packets;
  down_bytes += o.down_bytes;
  return *this;
}

namespace {

uint64_t growth(uint64_t last, uint64_t now) { return now >= last ? now - last : now; }

}  // namespace

void TrafficLedger::fold(Traffic& last, const TrafficBucket& b, const Traffic& now) {
  const Traffic grown{growth(last.up_packets, now.up_packets), growth(last.up_bytes, now.up_bytes),
                      growth(last.down_packets, now.down_packets),
                      growth(last.down_bytes, now.down_bytes)};
  last = now;
  if (grown == Traffic{}) return;
  buckets_[b] += grown;
}

void TrafficLedger::flow(const CtKey& k, const TrafficBucket& b, const Traffic& now) {
  Seen& s = flows_[k];
  fold(s.last, b, now);
  s.read = true;
}

void TrafficLedger::flow_gone(const CtKey& k, const TrafficBucket& b, const Traffic& last) {
  Seen& s = flows_[k];
  fold(s.last, b, last);
  flows_.erase(k);
}

namespace {

template <class Map>
void sweep(Map& seen) {
  for (auto it = seen.begin(); it != seen.end();) {
    if (!it->second.read) {
      it = seen.erase(it);
    } else {
      it->second.read = false;
      ++it;
    }
  }
}

}  // namespace

void TrafficLedger::sweep_flows() { sweep(flows_); }

void TrafficLedger::kernel(const std::string& element, const TrafficBucket& b, const Traffic& now) {
  Seen& s = kernel_[element];
  fold(s.last, b, now);
  s.read = true;
}

void TrafficLedger::sweep_kernel() { sweep(kernel_); }

}  // namespace tp
