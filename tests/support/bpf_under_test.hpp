// The kernel engine as an EngineUnderTest: BpfFastPath in a private network namespace (veths and
// dummies give the ports their ifindexes), frames put through its programs by BPF_PROG_TEST_RUN.
#pragma once

#include <vector>

#include "engine_under_test.hpp"

namespace tp::test {

// bpf_tc, bpf_tc_csum_complete (the kernel checks skb->csum after the run) and bpf_xdp.
void add_bpf_engine_kinds(std::vector<EngineKind>& kinds);

}  // namespace tp::test
