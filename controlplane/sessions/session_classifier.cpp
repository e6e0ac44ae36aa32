#include "session_classifier.hpp"

#include "session_policy.hpp"

namespace tp {

std::string SessionClassifier::apply(const std::vector<conf::SessionConfig>& sessions,
                                     uint32_t mask) {
  for (const auto& s : sessions)
    for (const auto& d : s.match.downstreams)
      if (!Nftables::quotable(d))
        return "nftables: interface name '" + d + "' cannot be written in a rule";
  const std::string body = session_table(sessions, mask);
  if (body.empty()) return remove();
  return nft_.replace_table(std::string("inet ") + kTable,
                            std::string("table inet ") + kTable + " {\n" + body + "}\n");
}

std::string SessionClassifier::remove() {
  return nft_.replace_table(std::string("inet ") + kTable, "");
}

}  // namespace tp
