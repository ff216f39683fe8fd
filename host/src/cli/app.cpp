// `panelboot`: the command line's entry (run_cli) — the commands registered, the arguments
// parsed, the parsed command run under the one error policy.
#include <algorithm>
#include <iostream>
#include <new>
#include <streambuf>

#include "panelboot/cli.hpp"
#include "panelboot/config.hpp"
#include "panelboot/error.hpp"
#include "panelboot/text.hpp"

#include "options.hpp"
#include "panelboot/mpi.hpp"
#include "panelboot/replications.hpp"
#include "scale.hpp"

namespace panelboot {
namespace {

// Notices and warnings reach stderr as they come, but those after the first two are held back
// until the command ends: shown after a success, dropped when it fails, so that a failing run
// prints at most three lines, its error the last (README). Progress lines do not pass here: they
// go to stderr itself, whose terminal they need.
class HeldBackLines : public std::streambuf {
 public:
  explicit HeldBackLines(std::ostream& to) : to_(to) {}
  void release() {
    to_ << held_;
    held_.clear();
  }

 protected:
  int overflow(int c) override {
    if (c == traits_type::eof()) return 0;
    if (lines_ >= kPassed) {
      held_ += static_cast<char>(c);
      return c;
    }
    to_.put(static_cast<char>(c));
    if (c == '\n') {
      ++lines_;
      to_.flush();
    }
    return c;
  }

 private:
  static constexpr int kPassed = 2;
  std::ostream& to_;
  std::string held_;
  int lines_ = 0;
};

// A command-line error as one line: an unknown option or command named with the nearest known
// one, else CLI11's own message; and where to look.
std::string parse_error_message(const CLI::ParseError& e, CLI::App& app, const std::vector<std::string>& args) {
  CLI::App* cmd = &app;
  for (CLI::App* sub : app.get_subcommands()) cmd = sub;
  std::vector<std::string> unknown = cmd->remaining();
  if (cmd != &app)
    for (const std::string& a : app.remaining()) unknown.push_back(a);
  const std::string help = cmd == &app ? "panelboot --help" : "panelboot " + cmd->get_name() + " --help";
  // the first unknown argument in command-line order (CLI11 keeps them reversed)
  const std::string* bad = nullptr;
  for (const std::string& a : args)
    if (std::find(unknown.begin(), unknown.end(), a) != unknown.end()) {
      bad = &a;
      break;
    }
  if (!bad && cmd == &app && !args.empty() && args[0].rfind("-", 0) != 0) bad = &args[0];  // not a command
  if (!bad) return printable(e.what(), 300) + " (see '" + help + "')";
  std::vector<std::string> names;
  const bool option = bad->rfind("-", 0) == 0;
  if (cmd == &app && !option) {
    for (const CLI::App* sub : app.get_subcommands({})) names.push_back(sub->get_name());
  } else {
    for (const CLI::Option* opt : cmd->get_options())
      for (const std::string& l : opt->get_lnames()) names.push_back("--" + l);
  }
  const std::string what = option ? "unknown option " : cmd == &app ? "unknown command " : "unexpected argument ";
  std::string msg = what + quoted(*bad) + " for " + (cmd == &app ? std::string("panelboot") : "panelboot " + cmd->get_name());
  const std::string near = nearest_name(bad->substr(0, bad->find('=')), names);
  if (!near.empty()) msg += "; did you mean '" + near + "'?";
  else if (!option && cmd != &app) msg += " (each option takes one value; quote values with spaces)";
  return msg + " (see '" + help + "')";
}

// Runs the command that was parsed; an error is one line on stderr (README: exit statuses).
// `terminal`: where progress lines go (stderr itself).
int run_parsed(const std::vector<cli::Command>& commands, std::ostream& out, std::ostream& err, std::ostream& terminal) {
  HeldBackLines held(err);
  std::ostream notices(&held);
  try {
    int status = 0;
    for (const cli::Command& c : commands)
      if (c.app->parsed()) status = c.run({out, notices, terminal});
    held.release();
    return status;
  } catch (const Interrupted& e) {  // a checkpointing run stopped by a signal, its checkpoint written
    held.release();
    err << "panelboot: " << printable(e.what(), 1000) << "\n";
    return 128 + e.signal();
  } catch (const Error& e) {
    err << "panelboot: error: " << printable(e.what(), 1000) << "\n";
    return 2;
  } catch (const mpi::StoppedByRoot&) {  // an MPI worker: rank 0 reports why the job stopped
    return 0;
  } catch (const mpi::RankFailed& e) {  // rank 0: another rank's error, as that rank gave it
    err << printable(e.what(), 1000) << "\n";
    return e.status();
  } catch (const std::bad_alloc&) {  // past the estimates: the machine, not a bug in the input
    err << "panelboot: error: ran out of memory; lower --B, --chunk, --grid or --threads, or free memory\n";
    return 2;
  } catch (const std::exception& e) {
    err << "panelboot: internal error: " << printable(e.what(), 1000) << "\n";
    return 3;
  }
}

// The commands, in the order `panelboot --help` lists them, by name.
struct CommandEntry {
  const char* name;
  cli::Command (*add)(CLI::App&);
};
constexpr CommandEntry kCommands[] = {{"fit", cli::register_fit},
                                      {"wild", cli::register_wild},
                                      {"threshold", cli::register_threshold},
                                      {"power", cli::register_power},
                                      {"describe", cli::register_describe},
                                      {"replicate", cli::register_replicate},
                                      {"merge", cli::register_merge},
                                      {"bench", cli::register_bench}};

// The command the arguments name first, alone; every command where they name none (top-level
// help, a misspelt command: its message lists them). Declaring the eight commands' options
// took about 0.6 ms of a 15-20 ms threshold process; the parse of a named command needs only
// its own.
std::vector<cli::Command> registered_commands(CLI::App& app, const std::vector<std::string>& args) {
  std::vector<cli::Command> commands;
  for (const CommandEntry& c : kCommands)
    if (!args.empty() && args[0] == c.name) commands.push_back(c.add(app));
  if (commands.empty())
    for (const CommandEntry& c : kCommands) commands.push_back(c.add(app));
  return commands;
}

int run_cli_with(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, std::ostream& terminal) {
  CLI::App app{"panelboot " PANELBOOT_VERSION
               ": fixed-effects regressions and their inference (cluster-robust variance, wild "
               "cluster bootstrap, panel thresholds), exactly as Stata/R/Python compute them",
               "panelboot"};
  app.set_version_flag("--version", std::string("panelboot ") + PANELBOOT_VERSION +
                                        (PANELBOOT_HAVE_CUDA ? " (CUDA backend compiled)" : " (CPU only)"));
  app.require_subcommand(1);
  const std::vector<cli::Command> commands = registered_commands(app, args);
  cli::set_invocation(args);
  std::vector<std::string> rev(args.rbegin(), args.rend());
  try {
    app.parse(rev);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e, out, err);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e, out, err);
  } catch (const CLI::ParseError& e) {
    err << "panelboot: error: " << parse_error_message(e, app, args) << "\n";
    return 2;
  }
  return run_parsed(commands, out, err, terminal);
}

}  // namespace

int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  return run_cli_with(args, out, err, err);
}

// Notices go to `err` (the caller's), progress lines to stderr itself, where a terminal shows them.
int run_cli_in_process(const std::vector<std::string>& args, InProcessRun& run, std::ostream& out, std::ostream& err) {
  cli::InProcessScope scope(run);
  return run_cli_with(args, out, err, std::cerr);
}

}  // namespace panelboot
