// tetherpath: the daemon. Loads and validates the configuration, takes the instance lock, builds
// the engine's runtime (DPDK: after EAL; the kernel engine needs none) and serves on a Boost.Asio
// loop:
// signals (SIGTERM/SIGINT stop, SIGHUP reloads the configuration, SIGUSR1 prints counters), the
// management API and metrics, and the control plane's timers.
#include <rte_eal.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "asio.hpp"
#include "config.hpp"
#include "control_plane.hpp"
#include "daemon_log.hpp"
#include "dpdk_runtime.hpp"
#include "eal_args.hpp"
#include "instance_lock.hpp"
#include "kernel_runtime.hpp"
#include "service_notify.hpp"

namespace {

void usage() {
  std::fprintf(stderr,
               "usage: tetherpath --config FILE     run the daemon\n"
               "       tetherpath --check-config FILE  validate a configuration and exit\n");
}

// The control loop, whichever engine runs: until SIGTERM/SIGINT.
int serve(tp::Dataplane& rt, const tp::conf::Config& cfg) {
  rt.start();
  boost::asio::io_context io;
  tp::ControlPlane cp(io, rt, cfg);
  tp::ServiceNotify service(io);
  boost::asio::signal_set stop_signals(io, SIGINT, SIGTERM);
  stop_signals.async_wait([&io, &service](const boost::system::error_code&, int sig) {
    tp::log::notice() << "signal " << sig << ", stopping";
    service.stopping("stopping: handing the flows back to the kernel");
    io.stop();
  });
  boost::asio::signal_set report_signal(io, SIGUSR1);
  std::function<void()> wait_report = [&] {
    report_signal.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      rt.report(std::cout);
      cp.report(std::cout);
      std::cout.flush();
      wait_report();
    });
  };
  wait_report();
  boost::asio::signal_set reload_signal(io, SIGHUP);
  std::function<void()> wait_reload = [&] {
    reload_signal.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      cp.reload();
      wait_reload();
    });
  };
  wait_reload();
  // Ready: the ports forward, the API answers, and the signals have their handlers (systemd may
  // send SIGHUP or SIGTERM as soon as it reads READY=1).
  tp::log::notice() << "running with " << cfg.ports.size() << " ports on the " << rt.engine()
                    << " engine, " << rt.worker_count() << " workers; api " << cfg.api.socket;
  service.ready("forwarding on " + std::to_string(cfg.ports.size()) + " ports (" +
                std::string(rt.engine()) + " engine)");
  // Every handler catches what it can; this is the last line, so that an exception nobody
  // foresaw costs one event, never the daemon and every tethered client's connectivity.
  while (!io.stopped()) {
    try {
      io.run();
    } catch (const std::exception& e) {
      tp::log::err() << "error in the control loop, continuing: " << e.what();
    }
  }
  cp.persist_usage();
  // Flows go back to the kernel (TCP marked liberal) before the fast path stops forwarding them,
  // unless the kernel engine is to keep forwarding them across a restart.
  if (!rt.keeps_forwarding_on_exit()) cp.stop_offload();
  cp.report(std::cout);
  rt.stop();
  rt.report(std::cout);
  return 0;
}

int run(const tp::conf::Config& cfg, const char* program) {
  tp::InstanceLock lock(cfg.run_dir);
  if (cfg.dataplane.engine == tp::conf::Engine::kernel) {
    try {
      tp::KernelRuntime rt(cfg);
      return serve(rt, cfg);
    } catch (const std::exception& e) {
      tp::log::err() << e.what();
      return 1;
    }
  }
  std::vector<std::string> args = tp::eal_args(cfg, program);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::string line;
  for (const auto& a : args) line += " " + a;
  tp::log::info() << "EAL" << line;
  if (rte_eal_init(static_cast<int>(argv.size()), argv.data()) < 0) {
    tp::log::err() << "EAL initialisation failed (see above)";
    return 1;
  }
  int rc = 0;
  try {
    tp::DpdkRuntime rt(cfg);
    rc = serve(rt, cfg);
  } catch (const std::exception& e) {
    tp::log::err() << e.what();
    rc = 1;
  }
  rte_eal_cleanup();
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  // Until the control loop installs its handlers, a status request (SIGUSR1) or a reload (SIGHUP)
  // must not kill the daemon; their default action would.
  std::signal(SIGUSR1, SIG_IGN);
  std::signal(SIGHUP, SIG_IGN);
  std::string config_path;
  bool check_only = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "--config" || a == "--check-config") && i + 1 < argc) {
      config_path = argv[++i];
      check_only = a == "--check-config";
    } else {
      usage();
      return 2;
    }
  }
  if (config_path.empty()) {
    usage();
    return 2;
  }
  tp::conf::Config cfg;
  try {
    cfg = tp::conf::load_file(config_path);
  } catch (const tp::conf::ConfigError& e) {
    tp::log::err() << e.what();
    return 2;
  }
  if (check_only) {
    std::printf("%s: valid (%zu ports, %s engine)\n", config_path.c_str(), cfg.ports.size(),
                tp::conf::to_string(cfg.dataplane.engine).c_str());
    return 0;
  }
  try {
    return run(cfg, argv[0]);
  } catch (const std::exception& e) {
    tp::log::err() << e.what();
    return 1;
  }
}
