#pragma once
// The command line: `panelboot <command> [options]`. run_cli is the whole program; main()
// forwards to it, and the tests call it in-process.
#include <ostream>
#include <string>
#include <vector>

namespace panelboot {

// args excludes the program name. Returns the exit status.
int run_cli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace panelboot
