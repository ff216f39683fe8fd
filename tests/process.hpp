#pragma once
// Runs the panelboot executable as a user does: a child process with its own stdin, stdout and
// stderr, so exit statuses, signals and failed writes are what a shell would see.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace pbtest {

// The binary under test: this build's, or PANELBOOT_EXE (to run the same checks against another
// build, e.g. an older commit's, and see them fail there).
inline std::string panelboot_exe() {
  if (const char* e = std::getenv("PANELBOOT_EXE")) return e;
  return std::string(PB_BINARY_DIR) + "/panelboot";
}

// In a forked child: runs panelboot with `args` (and the environment `envp`), under `launcher`
// (e.g. mpirun -np 3, found on PATH) when one is given; never returns (127 when the binary cannot
// be started).
[[noreturn]] inline void exec_panelboot(const std::vector<std::string>& args, char** envp = environ,
                                        const std::vector<std::string>& launcher = {}, const std::string& exe = "") {
  std::vector<std::string> full = launcher;
  full.push_back(exe.empty() ? panelboot_exe() : exe);
  full.insert(full.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : full) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (launcher.empty()) execve(argv[0], argv.data(), envp);
  else execvpe(argv[0], argv.data(), envp);
  _exit(127);
}

struct ProcOptions {
  std::vector<std::string> env;  // extra NAME=VALUE entries
  std::string stdin_text;
  std::string stdout_path;       // non-empty: stdout opened on this path (e.g. /dev/full)
  bool stdout_append = false;    // ... for appending (as `>> path`)
  bool close_stdout_early = false;  // the reader closes its end at once (a broken pipe)
  bool ignore_sigpipe = false;   // the child starts with SIGPIPE ignored (as under some shells)
  std::string cwd;
  double timeout_s = 60;
  std::vector<std::string> launcher;  // the command panelboot runs under (mpirun ...)
  std::string exe;                    // another executable than panelboot_exe()
};

struct ProcRun {
  int status = -1;      // exit status, or -1 when killed by a signal
  int signal = 0;       // the signal that ended it, 0 if none
  bool timed_out = false;
  std::string out, err;
  int stderr_lines() const {
    int n = 0;
    for (char c : err) n += c == '\n';
    return n;
  }
};

inline ProcRun run_process(const std::vector<std::string>& args, const ProcOptions& o = {}) {
  int in_p[2], out_p[2], err_p[2];
  if (pipe(in_p) || pipe(out_p) || pipe(err_p)) return {};
  // a broken pipe from the start: the read end closed before the fork, so that no copy of it
  // exists when the child writes (closed after the fork, a loaded machine could let the whole run
  // write into the pipe's buffer first and exit 0)
  if (o.close_stdout_early) {
    close(out_p[0]);
    out_p[0] = -1;
  }
  const pid_t pid = fork();
  if (pid == 0) {
    if (o.ignore_sigpipe) signal(SIGPIPE, SIG_IGN);
    else signal(SIGPIPE, SIG_DFL);
    if (!o.cwd.empty() && chdir(o.cwd.c_str()) != 0) _exit(127);
    dup2(in_p[0], 0);
    if (!o.stdout_path.empty()) {
      const int fd = open(o.stdout_path.c_str(), O_WRONLY | (o.stdout_append ? O_APPEND : 0));
      if (fd < 0) _exit(127);
      dup2(fd, 1);
      close(fd);
    } else {
      dup2(out_p[1], 1);
    }
    dup2(err_p[1], 2);
    for (int fd : {in_p[0], in_p[1], out_p[0], out_p[1], err_p[0], err_p[1]})
      if (fd >= 0) close(fd);
    // the extra entries replace the inherited ones of the same name (getenv takes the first)
    std::vector<std::string> env_s;
    const auto overridden = [&](const char* e) {
      for (const std::string& x : o.env)
        if (x.compare(0, x.find('=') + 1, e, 0, x.find('=') + 1) == 0) return true;
      return false;
    };
    for (char** e = environ; *e; ++e)
      if (!overridden(*e)) env_s.emplace_back(*e);
    env_s.insert(env_s.end(), o.env.begin(), o.env.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    exec_panelboot(args, envp.data(), o.launcher, o.exe);
  }
  close(in_p[0]);
  close(out_p[1]);
  close(err_p[1]);
  // stdin: written whole, then closed (small inputs only)
  if (!o.stdin_text.empty()) {
    signal(SIGPIPE, SIG_IGN);
    (void)!write(in_p[1], o.stdin_text.data(), o.stdin_text.size());
  }
  close(in_p[1]);
  ProcRun r;
  const auto t0 = std::chrono::steady_clock::now();
  bool out_open = !o.close_stdout_early, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    pollfd fds[2];
    int n = 0;
    if (out_open) fds[n++] = {out_p[0], POLLIN, 0};
    if (err_open) fds[n++] = {err_p[0], POLLIN, 0};
    const double left = o.timeout_s - std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (left <= 0) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, n, static_cast<int>(left * 1000) + 1) <= 0) continue;
    for (int i = 0; i < n; ++i) {
      if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const ssize_t got = read(fds[i].fd, buf, sizeof buf);
      const bool is_out = fds[i].fd == out_p[0];
      if (got <= 0) {
        (is_out ? out_open : err_open) = false;
      } else {
        (is_out ? r.out : r.err).append(buf, static_cast<std::size_t>(got));
      }
    }
  }
  if (!o.close_stdout_early) close(out_p[0]);
  close(err_p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFEXITED(st)) r.status = WEXITSTATUS(st);
  if (WIFSIGNALED(st)) r.signal = WTERMSIG(st);
  return r;
}

// A file's bytes.
inline std::string file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// A user error as the README promises it: status 2, no signal, nothing on stdout, at most
// `max_lines` lines on stderr, each from panelboot, the last the one-line error beginning
// 'panelboot: error: ' and holding every phrase.
inline void expect_user_error(const ProcRun& r, const std::vector<std::string>& phrases, int max_lines = 3) {
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << "; stderr: " << r.err;
  EXPECT_EQ(r.status, 2) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out.substr(0, 200);
  EXPECT_GE(r.stderr_lines(), 1);
  EXPECT_LE(r.stderr_lines(), max_lines) << r.err;
  std::istringstream lines(r.err);
  std::string line, last;
  while (std::getline(lines, line)) {
    EXPECT_EQ(line.rfind("panelboot: ", 0), 0u) << line;
    last = line;
  }
  EXPECT_EQ(last.rfind("panelboot: error: ", 0), 0u) << r.err;
  for (const auto& p : phrases) EXPECT_NE(last.find(p), std::string::npos) << "missing '" << p << "' in: " << r.err;
}

}  // namespace pbtest
