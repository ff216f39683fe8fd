// `panelboot replicate`: the whole study of ../shared/paper/ in one command, written as a report
// folder (report.md, tables.tex, results.json, study_data.csv, figures).
#include "options.hpp"

#include <sys/wait.h>

#include <cstring>
#include <sstream>

#include "panelboot/config.hpp"
#include "panelboot/error.hpp"
#include "panelboot/study.hpp"
#include "panelboot/text.hpp"

namespace panelboot::cli {
namespace {

constexpr long long kMaxStudyB = 100000000LL;  // 10^8 per bootstrap

struct ReplicateCli {
  std::string out = "report", map, instrument, audit;
  std::int64_t B = 9999, R = 2000, wild_B = 399, threshold_B = 300;
  std::uint64_t seed = kDefaultSeed;
  bool quick = false;
};

// --quick's sizes, for the counts not given on the command line.
void apply_quick(const CLI::App& cmd, ReplicateCli& c) {
  if (!c.quick) return;
  if (cmd.count("--B") == 0) c.B = 999;
  if (cmd.count("--R") == 0) c.R = 200;
  if (cmd.count("--wild-B") == 0) c.wild_B = 99;
  if (cmd.count("--threshold-B") == 0) c.threshold_B = 100;
}

const std::vector<std::string> kFigures = {"lr_gamma.png", "power_curves.png", "bootstrap_t.png"};
const std::vector<std::string> kReportFiles = {"report.md", "tables.tex", "results.json", "study_data.csv"};

// The figures: scripts/plot-report (matplotlib) draws them from results.json into the staging
// folder. Returns the figures drawn; `note` says why none or not all were (the report states it).
std::vector<StudyFigure> draw_figures(ReportFolder& folder, std::string& note) {
  const char* env = std::getenv("PANELBOOT_PLOT_REPORT");
  const std::string script = env && *env ? env : PANELBOOT_PLOT_REPORT;
  const ScriptRun run = run_script(script, {folder.staging() + "/results.json", folder.staging()});
  std::vector<StudyFigure> drawn;
  std::istringstream lines(run.output);
  std::string line, last_error;
  while (std::getline(lines, line)) {
    if (line.rfind("figure ", 0) == 0) {  // "figure NAME CAPTION"
      const std::size_t space = line.find(' ', 7);
      const std::string name = line.substr(7, space - 7);
      if (std::find(kFigures.begin(), kFigures.end(), name) != kFigures.end()) {
        folder.adopt(name);
        drawn.push_back({name, space == std::string::npos ? std::string() : line.substr(space + 1)});
      }
    } else if (line.rfind("plot-report:", 0) == 0) {
      last_error = line;
    }
  }
  if (run.spawn_error != 0)
    note = "cannot run " + script + " (" + std::strerror(run.spawn_error) + "); install python3 and matplotlib (scripts/install-deps)";
  else if (!run.ok())
    note = (last_error.empty() ? script + " failed" : printable(last_error, 300)) +
           (WIFEXITED(run.status) && WEXITSTATUS(run.status) == 3 ? "; scripts/install-deps installs matplotlib" : "");
  return drawn;
}

int cmd_replicate(const CLI::App& cmd, const CommonOptions& o, ReplicateCli c, std::ostream& out, std::ostream& err,
                  std::ostream& terminal) {
  apply_quick(cmd, c);
  std::vector<std::string> names = kReportFiles;
  names.insert(names.end(), kFigures.begin(), kFigures.end());
  check_paths(o, {});
  ReportFolder folder(c.out, names);  // checked before any work: never replaces what it did not write
  apply_threads(o.threads, err);
  DataFrame df = read_input(o, err);
  if (!c.map.empty()) apply_variable_map(df, parse_variable_map(c.map));
  StudyData data = prepare_study_data(std::move(df));
  std::unique_ptr<DataFrame> audit_table;
  if (!c.audit.empty()) audit_table = std::make_unique<DataFrame>(read_data(c.audit));
  const std::unique_ptr<Backend> backend = open_backend(o, err);
  const std::unique_ptr<Backend> power = power_backend(o, err);
  StudyOptions so;
  so.B = c.B;
  so.R = c.R;
  so.wild_B = c.wild_B;
  so.threshold_B = c.threshold_B;
  so.seed = c.seed;
  so.level = o.level;
  so.quick = c.quick;
  so.instrument = c.instrument;
  so.progress = &terminal;
  so.power_backend = power.get();
  so.max_memory = max_memory_bytes(o);
  so.audit_table = audit_table.get();
  nlohmann::json results = run_study(data, so, *backend);
  results["threads"] = threads_in_use();
  results["warnings"] = data.df.warnings;
  folder.add("study_data.csv", data_frame_csv(data.df));
  folder.add("results.json", dump_json(results));
  std::string note;
  const std::vector<StudyFigure> figures = draw_figures(folder, note);
  if (!note.empty()) err << "panelboot: warning: figures not drawn: " << note << "\n";
  folder.add("report.md", study_markdown(results, figures, note));
  folder.add("tables.tex", study_latex(results));
  folder.commit();
  out << study_summary(results, c.out);
  return 0;
}

}  // namespace

Command register_replicate(CLI::App& app) {
  auto o = std::make_shared<CommonOptions>();
  auto c = std::make_shared<ReplicateCli>();
  CLI::App* cmd = app.add_subcommand(
      "replicate", "The whole study of ../shared/paper/ (Tables 5-9, IV, threshold, an audit of the published "
                   "tables) with valid inference, written as a report folder");
  add_data_option(cmd, *o);
  cmd->add_option("--out", c->out,
                  "Report folder (made if missing; other files in it are kept: only the files listed in its "
                  ".panelboot-report are ever replaced)")
      ->capture_default_str();
  cmd->add_option("--map", c->map,
                  "The study's names for your columns: 'newqua=myvar,rgzn=ai_index' (study=yours; variables: newqua, "
                  "rgzn, urban, ind, fdi, open, fin, tec, province, year, region, devlevel, municipality, ai_*)");
  add_replications_option(cmd, c->B, 9, kMaxStudyB, "Replications of the wild, WRE and mediation bootstraps");
  add_monte_carlo_options(cmd, c->R, c->wild_B);
  cmd->add_option("--threshold-B", c->threshold_B, "Bootstrap replications per threshold test (Hansen's 300)")
      ->transform(whole_in(1, kMaxThresholdB))
      ->capture_default_str();
  add_seed_option(cmd, c->seed);
  cmd->add_flag("--quick", c->quick,
                "A first look in seconds: --B 999 --R 200 --wild-B 99 --threshold-B 100 (counts given are kept)");
  cmd->add_option("--instrument", c->instrument,
                  "The IV section's excluded instrument for rgzn (an expression; default l(rgzn,1), its one-year lag)");
  cmd->add_option("--audit", c->audit,
                  "A table of published coefficients to audit instead of the paper's (data/paper_tables.csv's columns)")
      ->check(file_name());
  add_level_option(cmd, *o, "Confidence level of the intervals");
  add_threads_option(cmd, *o);
  add_backend_options(cmd, *o);
  add_memory_option(cmd, *o);
  cmd->footer("Example: panelboot replicate --quick            (embedded simulated data, report/ in seconds)\n"
              "         panelboot replicate --data mine.csv --map newqua=nqp --out appendix");
  return {cmd, [cmd, o, c](const Streams& s) { return cmd_replicate(*cmd, *o, *c, s.out, s.notices, s.terminal); }};
}

}  // namespace panelboot::cli
