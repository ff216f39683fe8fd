// `panelboot describe`: a data file's variables with summary statistics.
#include "options.hpp"

#include "panelboot/expr.hpp"
#include "panelboot/text.hpp"

namespace panelboot::cli {
namespace {

int cmd_describe(const CommonOptions& o, std::ostream& out, std::ostream& err) {
  check_paths(o);
  note_host_only(o, err, "describe has no replication work");
  const DataFrame df = read_input(o, err);
  std::vector<char> keep(df.n_rows(), 1);
  if (!o.where.empty()) {
    const ExprPtr e = parse_expression(o.where, "--where " + quoted(o.where));
    const std::vector<double> m = evaluate(*e, EvalContext{&df, nullptr, "--where"});
    for (std::size_t r = 0; r < m.size(); ++r) keep[r] = m[r] == m[r] && m[r] != 0;
  }
  deliver(render_describe(df, keep, value_of(kFormatNames, o.format, "--format")), o, out);
  return 0;
}

}  // namespace

Command register_describe(CLI::App& app) {
  auto o = std::make_shared<CommonOptions>();
  CLI::App* cmd = app.add_subcommand("describe", "List a data file's variables with summary statistics");
  add_data_option(cmd, *o);
  add_where_option(cmd, *o);
  add_backend_options(cmd, *o);
  add_output_options(cmd, *o, {Format::kText, Format::kJson, Format::kMarkdown, Format::kLatex, Format::kCsv});
  return {cmd, [o](const Streams& s) { return cmd_describe(*o, s.out, s.notices); }};
}

}  // namespace panelboot::cli
