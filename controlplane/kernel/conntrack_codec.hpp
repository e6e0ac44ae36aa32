// Between conntrack netlink messages and CtEntry, through libnetfilter_conntrack.
#pragma once

#include "conntrack_entry.hpp"

struct nlmsghdr;
struct nf_conntrack;

namespace tp {

bool parse_conntrack(const nlmsghdr* nlh, CtEntry& out);

// A libnetfilter_conntrack object carrying the entry's original tuple and zone: what identifies
// it in an update. The caller adds the attributes to change and frees it with nfct_destroy.
nf_conntrack* conntrack_for_update(const CtEntry& e);

}  // namespace tp
