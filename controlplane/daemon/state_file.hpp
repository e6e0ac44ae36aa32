// Small files in the state directory that must survive a crash whole: written to a temporary
// name, fsynced, renamed over the old one, and the directory fsynced, so a reader finds either
// the previous or the new content, never a torn one.
#pragma once

#include <optional>
#include <string>

namespace tp {

// Throws std::runtime_error naming the path and the failing step.
void write_state_file(const std::string& path, const std::string& content);
std::optional<std::string> read_state_file(const std::string& path);

}  // namespace tp
