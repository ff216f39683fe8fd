#pragma once
// The command line: `panelboot <command> [options]`. run_cli is the whole program; main()
// forwards to it, and the tests call it in-process.
#include <ostream>
#include <string>
#include <vector>

#include "panelboot/data_frame.hpp"

namespace panelboot {

// args excludes the program name. Returns the exit status.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// A run inside another program (the Python package, python/): the command line's own parse and
// commands, so every option, range, default and message is the CLI's, with
//  - the data handed over in memory: `data` is used when --data is not given (the command moves
//    it out), named by `data->source`;
//  - the replications computed in blocks of about 0.5 s (results do not depend on it): a stop
//    signal recorded by note_stop_signal (panelboot/report.hpp) ends the run between two blocks,
//    exit status 130 with SIGINT;
//  - with `text_too`, the text report of fit, wild, threshold or power kept in `text` besides the
//    report that `out` receives in --format.
// One in-process run at a time (the caller serializes them).
struct InProcessRun {
  DataFrame* data = nullptr;
  bool text_too = false;
  std::string text;
};
int run_cli_in_process(const std::vector<std::string>& args, InProcessRun& run, std::ostream& out, std::ostream& err);

}  // namespace panelboot
