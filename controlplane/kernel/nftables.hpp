// nftables through libnftables: a buffer of nft's own language is one transaction, so a table
// replaced by "create, delete, define again" is never seen half-written, and `nft list` shows
// the rules as they were written.
#pragma once

#include <string>

struct nft_ctx;

namespace tp {

class Nftables {
 public:
  Nftables();  // throws std::runtime_error
  ~Nftables();
  Nftables(const Nftables&) = delete;
  Nftables& operator=(const Nftables&) = delete;

  // Empty, or what nftables said.
  std::string run(const std::string& commands);
  // "table FAMILY NAME" gone, in one transaction whether or not it was there; `then` (more
  // commands, the table defined again) in the same one.
  std::string replace_table(const std::string& family_and_name, const std::string& then);
  // The commands that make "table FAMILY NAME" empty whether or not it was there, for a
  // transaction of several tables.
  static std::string emptied(const std::string& family_and_name);
  // A list command's output as nft's JSON, into `out`. Empty, or what nftables said.
  std::string list_json(const std::string& command, std::string& out);

  // Whether an interface name can go into a rule between quotes: only what Linux names hold.
  static bool quotable(const std::string& name);

 private:
  nft_ctx* ctx_ = nullptr;
};

}  // namespace tp
