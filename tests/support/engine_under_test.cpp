#include "engine_under_test.hpp"

#include "bpf_under_test.hpp"
#include "dpdk_env.hpp"
#include "engine_harness.hpp"
#include "worker_clock.hpp"

namespace tp::test {
namespace {

class DpdkUnderTest final : public EngineUnderTest {
 public:
  DpdkUnderTest() { init_eal(); }
  FastPath& engine() override { return *h_.fast_path; }
  std::string send(uint8_t in_port, const Bytes& frame, Bytes* out) override {
    rte_mbuf* m = to_mbuf(frame);
    // Stamped with the workers' clock, as a running worker does.
    EngineOutput& o = h_.run(in_port, &m, 1, worker_clock_ms());
    std::string where = "nowhere";
    if (o.punt.n) where = name(o.punt.reasons[0]);
    if (o.drop.n) where = name(o.drop.reasons[0]);
    if (out && (o.punt.n || o.drop.n)) *out = from_mbuf(m);
    if (o.n_tx_ports) {
      where = "port:" + std::to_string(o.tx_ports[0]);
      if (out) *out = from_mbuf(o.tx[o.tx_ports[0]].pkts[0]);
    }
    rte_pktmbuf_free(m);
    return where;
  }

 private:
  EngineHarness h_;
};

}  // namespace

std::vector<EngineKind> engine_kinds() {
  std::vector<EngineKind> kinds;
  kinds.push_back({"dpdk", [](std::string&) -> std::unique_ptr<EngineUnderTest> {
                     return std::make_unique<DpdkUnderTest>();
                   }});
  add_bpf_engine_kinds(kinds);
  return kinds;
}

std::vector<std::string> engine_kind_names(bool with_golden_only) {
  std::vector<std::string> names;
  for (const EngineKind& k : engine_kinds())
    if (with_golden_only || !k.golden_only) names.push_back(k.name);
  return names;
}

std::unique_ptr<EngineUnderTest> make_engine(const std::string& name, std::string& why) {
  for (const EngineKind& k : engine_kinds())
    if (k.name == name) return k.make(why);
  why = "no engine named " + name;
  return nullptr;
}

}  // namespace tp::test
