#include "session_classifier.hpp"

namespace tp {

std::string SessionClassifier::apply(const ClassifierPlan& plan) {
  std::vector<std::string> names = plan.uplink_ifaces;
  names.insert(names.end(), plan.cellular_ifaces.begin(), plan.cellular_ifaces.end());
  for (const auto& s : plan.sessions)
    names.insert(names.end(), s.match.downstreams.begin(), s.match.downstreams.end());
  for (const auto& n : names)
    if (!n.empty() && !Nftables::quotable(n))
      return "nftables: interface name '" + n + "' cannot be written in a rule";
  const std::string body = session_table(plan);
  if (body.empty()) return remove();
  return nft_.replace_table(std::string("inet ") + kTable,
                            std::string("table inet ") + kTable + " {\n" + body + "}\n");
}

std::string SessionClassifier::remove() {
  return nft_.replace_table(std::string("inet ") + kTable, "");
}

}  // namespace tp
