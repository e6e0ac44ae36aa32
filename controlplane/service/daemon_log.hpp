// The daemon's log: one line per statement on stderr, "tetherpath: ...". When stderr is the
// journal (systemd sets JOURNAL_STREAM to its device and inode), each line starts with its
// syslog priority ("<3>"), which journald strips and files the line under; a terminal or a lab's
// log file gets the plain line. A line is written with one write(), so lines from the control
// thread and the flush thread never interleave.
#pragma once

#include <sstream>
#include <string>

namespace tp::log {

enum class Priority { err = 3, warning = 4, notice = 5, info = 6 };

// Whether stderr is the journal's stream (read once, at the first line).
bool to_journal();
// The line as written: priority prefix (journal only), "tetherpath: ", text, newline.
std::string format(Priority p, const std::string& text, bool journal);
void write(Priority p, const std::string& text);

class Line {
 public:
  explicit Line(Priority p) : priority_(p) {}
  Line(const Line&) = delete;
  Line& operator=(const Line&) = delete;
  ~Line() { write(priority_, text_.str()); }
  template <class T>
  Line& operator<<(const T& v) {
    text_ << v;
    return *this;
  }

 private:
  Priority priority_;
  std::ostringstream text_;
};

// Failures that lose something (a save, a dump, a rule) or refuse a request.
inline Line err() { return Line(Priority::err); }
// Degraded but working: something is skipped, ignored or falls back.
inline Line warning() { return Line(Priority::warning); }
// State changes an operator wants in the journal: start, stop, reload, policy, failover.
inline Line notice() { return Line(Priority::notice); }
// Routine: events, control operations, what the daemon took over.
inline Line info() { return Line(Priority::info); }

}  // namespace tp::log
