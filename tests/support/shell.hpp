// Shell commands for tests that set up the kernel's state with ip and nft, as an operator would.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>

namespace tp::test {

// The command's exit status as std::system gives it (0: success).
inline int sh(const std::string& cmd) { return std::system(cmd.c_str()); }

// What the command printed on its standard output.
inline std::string out_of(const std::string& cmd) {
  std::string out;
  if (FILE* p = popen(cmd.c_str(), "r")) {
    char buf[512];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  return out;
}

}  // namespace tp::test
