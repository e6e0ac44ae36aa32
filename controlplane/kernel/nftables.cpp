#include "nftables.hpp"

#include <nftables/libnftables.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace tp {

Nftables::Nftables() : ctx_(nft_ctx_new(NFT_CTX_DEFAULT)) {
  if (!ctx_) throw std::runtime_error("nftables: cannot create a context");
  nft_ctx_buffer_output(ctx_);
  nft_ctx_buffer_error(ctx_);
}

Nftables::~Nftables() { nft_ctx_free(ctx_); }

std::string Nftables::run(const std::string& commands) {
  if (nft_run_cmd_from_buffer(ctx_, commands.c_str()) == 0) return "";
  std::string err = nft_ctx_get_error_buffer(ctx_);
  while (!err.empty() && std::isspace(static_cast<unsigned char>(err.back()))) err.pop_back();
  return "nftables: " + (err.empty() ? std::string("refused") : err);
}

// Create-then-delete makes the delete valid whether or not the table exists.
std::string Nftables::emptied(const std::string& table) {
  return "table " + table + "\ndelete table " + table + "\n";
}

std::string Nftables::replace_table(const std::string& table, const std::string& then) {
  return run(emptied(table) + then);
}

std::string Nftables::list_json(const std::string& command, std::string& out) {
  const unsigned flags = nft_ctx_output_get_flags(ctx_);
  nft_ctx_output_set_flags(ctx_, flags | NFT_CTX_OUTPUT_JSON);
  std::string error = run(command);
  nft_ctx_output_set_flags(ctx_, flags);
  // Reading the buffer empties it, so a later command's output does not follow this one's.
  const char* text = nft_ctx_get_output_buffer(ctx_);
  out = error.empty() && text ? text : "";
  return error;
}

bool Nftables::quotable(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
           c == '@' || c == ':';
  });
}

}  // namespace tp
