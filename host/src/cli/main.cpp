#include <iostream>

#include "panelboot/cli.hpp"

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  return panelboot::run_cli(args, std::cout, std::cerr);
}
