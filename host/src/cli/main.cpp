#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <set>
#include <streambuf>

#include "panelboot/cli.hpp"
#include "panelboot/error.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/mpi.hpp"
#include "panelboot/report.hpp"

namespace {

// Standard output as the report's stream. A failed write is an error (InvalidInput, so exit 2
// with one line), never a silent success; a closed pipe (`panelboot ... | head`) ends the process
// by SIGPIPE, silently, as other Unix tools do (status 141), even where SIGPIPE was ignored by
// the parent. The command writes its report before it renames its side files, so a failure here
// leaves none of them.
class StdoutBuf : public std::streambuf {
 public:
  StdoutBuf() { setp(buf_, buf_ + sizeof buf_); }

 protected:
  int overflow(int c) override {
    drain();
    if (c != traits_type::eof()) {
      *pptr() = static_cast<char>(c);
      pbump(1);
    }
    return c == traits_type::eof() ? 0 : c;
  }
  int sync() override {
    drain();
    return 0;
  }

 private:
  void drain() {
    const std::size_t n = static_cast<std::size_t>(pptr() - pbase());
    setp(buf_, buf_ + sizeof buf_);
    if (n == 0 || panelboot::write_fully(STDOUT_FILENO, buf_, n)) return;
    if (errno == EPIPE) {
      ::signal(SIGPIPE, SIG_DFL);
      ::raise(SIGPIPE);
    }
    throw panelboot::InvalidInput(std::string("cannot write to standard output: ") + std::strerror(errno));
  }
  char buf_[1 << 16];
};

// An MPI worker's streams: its output is rank 0's to write (discarded here); of its stderr the
// last 4 kB are kept, so that its error line reaches rank 0.
class Discard : public std::streambuf {
 protected:
  int overflow(int c) override { return c == traits_type::eof() ? 0 : c; }
};

class Tail : public std::streambuf {
 public:
  const std::string& text() const { return text_; }

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return 0;
    text_ += static_cast<char>(c);
    if (text_.size() > 8192) text_.erase(0, text_.size() - 4096);
    return c;
  }

 private:
  std::string text_;
};

// Rank > 0 of an MPI job: runs the ranked commands (wild, threshold, power) with rank 0, whose
// replications it shares; any other command is rank 0's alone.
int run_worker(panelboot::mpi::Session& s, const std::vector<std::string>& args) {
  static const std::set<std::string> kRanked = {"wild", "threshold", "power"};
  Discard discard;
  Tail tail;
  std::ostream out(&discard), err(&tail);
  int status = 0;
  if (!args.empty() && kRanked.count(args[0])) status = panelboot::run_cli(args, out, err);
  status = s.end(status, tail.text(), err);
  panelboot::mpi::close_session();
  return status;
}

// The command line on rank 0 or in a plain run: the report to standard output.
int run_command_line(const std::vector<std::string>& args) {
  StdoutBuf buf;
  std::ostream out(&buf);
  out.exceptions(std::ios::badbit);  // the buffer's InvalidInput reaches the command's handler
  try {
    const int status = panelboot::run_cli(args, out, std::cerr);
    if (out.good()) out.flush();  // a failed write was reported by the command
    return status;
  } catch (const panelboot::Error& e) {  // --help or --version text that could not be written
    std::cerr << "panelboot: error: " << e.what() << "\n";
    return 2;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Freed blocks stay in the heap for reuse instead of going back to the kernel: a threshold
  // run allocates and frees the same few MB several times (xthreg example: about 600 fewer
  // faults, setup 3.7 -> 2.9 ms), a fit of 10^7 rows half a GB (memory.hpp).
  panelboot::keep_freed_memory_for_reuse();
  try {
    panelboot::mpi::start_if_launched(&argc, &argv);
  } catch (const panelboot::mpi::StartFailed& e) {  // this node's fault: every rank says so
    std::cerr << "panelboot: rank " << panelboot::mpi::launch_of().rank << ": error: " << e.what() << "\n";
    return 2;
  } catch (const panelboot::Error& e) {  // the same on every rank: one line, from the first rank
    if (panelboot::mpi::launch_of().rank == 0) std::cerr << "panelboot: error: " << e.what() << "\n";
    return 2;
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  panelboot::mpi::Session* session = panelboot::mpi::session();
  if (session && !session->root()) return run_worker(*session, args);
  int status = run_command_line(args);
  if (session) status = session->end(status, "", std::cerr);
  panelboot::mpi::close_session();
  return status;
}
