// The control plane's signed configuration operations (docs/api.md, "Signed configuration"):
// apply_signed_config and restore_config apply as a reload does, or refuse and change nothing;
// each outcome is an event and a log line. The checks themselves are config/signed_config.*.
#include <filesystem>

#include "control_plane.hpp"
#include "daemon_log.hpp"
#include "state_file.hpp"

namespace tp {

conf::Config ControlPlane::running_config(const conf::Config& local, std::string& dropped) const {
  dropped.clear();
  if (!signed_.running) return local;
  try {
    verify_bundle(*signed_.running, local.signed_config.trusted_keys, std::nullopt);
    conf::Config c = load_bundle_config(*signed_.running, local);
    if (const std::string why = conf::live_change_refusal(local, c); !why.empty())
      throw SignedConfigRefusal("invalid_config", why);
    return c;
  } catch (const SignedConfigRefusal& r) {
    dropped = signed_.running->describe() + " no longer applies (" + r.code + ": " + r.what() +
              "): " + local.source + " runs";
    return local;
  }
}

void ControlPlane::forget_signed(const std::string& dropped) {
  log::warning() << "signed configuration: " << dropped;
  // Kept in the state directory until the next apply: the high-water mark stays.
  signed_.running.reset();
  signed_.restorable = false;
  signed_.previous.reset();
}

void ControlPlane::save_signed_state(const SignedState& s) {
  try {
    std::filesystem::create_directories(cfg_.state_dir);
    write_state_file(cfg_.state_dir + "/" + kSignedStateFile, state_json(s).dump(2) + "\n");
  } catch (const std::exception& e) {
    throw SignedConfigRefusal("state_not_saved", e.what());
  }
}

Json ControlPlane::signed_status() const {
  auto which = [](const std::optional<SignedBundle>& b) {
    return b ? Json{{"serial", b->serial}, {"key", b->key}} : Json("local");
  };
  Json keys = Json::array();
  for (const auto& k : cfg_.signed_config.trusted_keys) keys.push_back(k.name);
  return Json{{"trusted_keys", keys},
              {"running", which(signed_.running)},
              {"local_file", local_path_},
              {"last_serial", signed_.last_serial},
              {"restore_to", signed_.restorable ? which(signed_.previous) : Json(nullptr)},
              {"applied", signed_applied_},
              {"refused", signed_refused_}};
}

void ControlPlane::signed_refused(const char* action, const SignedConfigRefusal& r,
                                  const std::optional<SignedBundle>& b) {
  ++signed_refused_;
  log::warning() << "signed configuration: " << action << " refused, nothing changed: " << r.code
                 << ": " << r.what();
  publish(Json{{"event", "signed_config"},
               {"action", action},
               {"applied", false},
               {"serial", b ? Json(b->serial) : Json(nullptr)},
               {"key", b ? Json(b->key) : Json(nullptr)},
               {"error", r.code},
               {"reason", r.what()}});
  throw api::ApiError(r.code, r.what());
}

// Checked in the order docs/api.md gives: each refusal has its own code. The state directory is
// written before anything changes, so a failed write changes nothing either.
Json ControlPlane::apply_signed_config(const Json& bundle) {
  std::optional<SignedBundle> b;
  try {
    if (cfg_.signed_config.trusted_keys.empty())
      throw SignedConfigRefusal("not_configured",
                                "the local configuration names no signed_config.trusted_keys");
    b = parse_bundle(bundle);
    verify_bundle(*b, cfg_.signed_config.trusted_keys, signed_.last_serial);
    conf::Config next = load_bundle_config(*b, cfg_);
    if (const std::string why = change_refusal(next); why.rfind("busy: ", 0) == 0)
      throw SignedConfigRefusal("busy", why.substr(6));
    else if (!why.empty())
      throw SignedConfigRefusal("invalid_config", b->describe() + ": " + why);
    const SignedState state = after_apply(signed_, *b);
    save_signed_state(state);
    signed_ = state;
    adopt(std::move(next));
  } catch (const SignedConfigRefusal& r) {
    signed_refused("apply", r, b);
  }
  ++signed_applied_;
  log::notice() << "signed configuration applied: " << cfg_.source << " runs";
  publish(Json{{"event", "signed_config"},
               {"action", "apply"},
               {"applied", true},
               {"serial", b->serial},
               {"key", b->key}});
  return Json{{"serial", b->serial}, {"key", b->key}, {"config", cfg_.source}};
}

// Back one step: the configuration that ran before the last apply, verified again if it was a
// bundle; the serial high-water mark stays where it is.
Json ControlPlane::restore_config() {
  const std::optional<SignedBundle> to = signed_.previous;
  try {
    if (!signed_.restorable)
      throw SignedConfigRefusal("nothing_to_restore",
                                "no configuration to go back to: none was applied since the "
                                "last restore (or start)");
    conf::Config next;
    if (to) {
      verify_bundle(*to, cfg_.signed_config.trusted_keys, std::nullopt);
      next = load_bundle_config(*to, cfg_);
    } else {
      try {
        next = conf::load_file(local_path_);
      } catch (const conf::ConfigError& e) {
        throw SignedConfigRefusal("invalid_config", e.what());
      }
    }
    if (const std::string why = change_refusal(next); why.rfind("busy: ", 0) == 0)
      throw SignedConfigRefusal("busy", why.substr(6));
    else if (!why.empty())
      throw SignedConfigRefusal("invalid_config", next.source + ": " + why);
    const SignedState state = after_restore(signed_);
    save_signed_state(state);
    signed_ = state;
    adopt(std::move(next));
  } catch (const SignedConfigRefusal& r) {
    signed_refused("restore", r, to);
  }
  log::notice() << "configuration restored: " << cfg_.source << " runs";
  publish(Json{{"event", "signed_config"},
               {"action", "restore"},
               {"applied", true},
               {"serial", to ? Json(to->serial) : Json(nullptr)},
               {"key", to ? Json(to->key) : Json(nullptr)},
               {"config", cfg_.source}});
  return Json{{"config", cfg_.source}};
}

}  // namespace tp
