// libFuzzer target: arbitrary bytes as a configuration file. The loader must either return a
// configuration or throw ConfigError naming the file; anything else (another exception, a crash, a
// sanitizer report) is a finding. A loaded configuration is also compared with a running one, as a
// reload does.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "config.hpp"

using namespace tp;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const conf::Config running =
      conf::load_string("ports:\n  - {name: modem0, role: upstream, device: a}\n", "running.yaml");
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const conf::Config c = conf::load_string(text, "fuzz.yaml");
    (void)conf::live_change_refusal(running, c);
  } catch (const conf::ConfigError& e) {
    if (std::string(e.what()).rfind("fuzz.yaml", 0) != 0) {
      std::fprintf(stderr, "finding: error does not name the file: %s\n", e.what());
      std::abort();
    }
  }
  return 0;
}
