#include "uplink_masquerade.hpp"

#include <nftables/libnftables.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace tp {

namespace {

// Interface names go into nft's language between quotes: only what Linux names usually hold.
bool plain_name(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
           c == '@' || c == ':';
  });
}

}  // namespace

UplinkMasquerade::UplinkMasquerade() : ctx_(nft_ctx_new(NFT_CTX_DEFAULT)) {
  if (!ctx_) throw std::runtime_error("nftables: cannot create a context");
  nft_ctx_buffer_output(ctx_);
  nft_ctx_buffer_error(ctx_);
}

UplinkMasquerade::~UplinkMasquerade() { nft_ctx_free(ctx_); }

std::string UplinkMasquerade::run(const std::string& commands) {
  if (nft_run_cmd_from_buffer(ctx_, commands.c_str()) == 0) return "";
  std::string err = nft_ctx_get_error_buffer(ctx_);
  while (!err.empty() && std::isspace(static_cast<unsigned char>(err.back()))) err.pop_back();
  return "nftables: " + (err.empty() ? std::string("refused") : err);
}

std::string UplinkMasquerade::apply(const std::vector<std::string>& ifaces) {
  std::string set;
  for (const std::string& i : ifaces) {
    if (!plain_name(i)) return "nftables: interface name '" + i + "' cannot be written in a rule";
    set += (set.empty() ? "\"" : ", \"") + i + "\"";
  }
  // Create-then-delete makes the delete valid whether or not the table exists; the whole buffer
  // is one transaction.
  std::string cmd = std::string("table ip ") + kTable + "\ndelete table ip " + kTable + "\n";
  cmd += std::string("table ip ") + kTable + " {\n  chain postrouting {\n" +
         "    type nat hook postrouting priority srcnat; policy accept;\n";
  if (!set.empty()) cmd += "    oifname { " + set + " } masquerade\n";
  cmd += "  }\n}\n";
  return run(cmd);
}

std::string UplinkMasquerade::remove() {
  return run(std::string("table ip ") + kTable + "\ndelete table ip " + kTable + "\n");
}

}  // namespace tp
