// `panelboot replicate` as a user runs it: every section present; each number equal to the one the
// command recorded beside it gives when run (fit, wild, power, threshold on the report's
// study_data.csv); the report folder never loses a file it did not write, an interrupted run leaves
// the previous report as it was, and bad input is one line with exit 2.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <nlohmann/json.hpp>
#include <sstream>

#include "helpers.hpp"
#include "process.hpp"

namespace {
using nlohmann::json;
namespace fs = std::filesystem;

// The words of a recorded command line ('...' quoting, as the report writes them).
std::vector<std::string> shell_words(const std::string& cmd) {
  std::vector<std::string> out;
  std::string cur;
  bool in_word = false, quoted = false;
  for (char c : cmd) {
    if (quoted) {
      if (c == '\'') quoted = false;
      else cur += c;
    } else if (c == '\'') {
      quoted = in_word = true;
    } else if (c == '\\') {
      continue;  // '\'' : the escaped quote comes next, outside the quotes
    } else if (c == ' ') {
      if (in_word) out.push_back(cur);
      cur.clear();
      in_word = false;
    } else {
      cur += c;
      in_word = true;
    }
  }
  if (in_word) out.push_back(cur);
  return out;
}

// Runs a recorded command in-process on the report's data file, in JSON.
json run_recorded(const std::string& cmd, const std::string& dir) {
  std::vector<std::string> w = shell_words(cmd);
  EXPECT_EQ(w.at(0), "panelboot");
  w.erase(w.begin());
  for (std::size_t i = 0; i + 1 < w.size(); ++i)
    if (w[i] == "--data") w[i + 1] = dir + "/" + w[i + 1];
  w.push_back("--format");
  w.push_back("json");
  const pbtest::CliRun r = pbtest::run(w);
  EXPECT_EQ(r.status, 0) << cmd << "\n" << r.err;
  return r.status == 0 ? json::parse(r.out) : json::object();
}

// The options of a run that may take minutes on a loaded machine.
pbtest::ProcOptions slow() {
  pbtest::ProcOptions o;
  o.timeout_s = 300;
  return o;
}

std::string slurp(const std::string& p) { return pbtest::file_bytes(p); }

std::map<std::string, std::string> folder_bytes(const std::string& dir) {
  std::map<std::string, std::string> m;
  for (const auto& e : fs::directory_iterator(dir)) m[e.path().filename().string()] = slurp(e.path().string());
  return m;
}

void remove_staging_folders(const std::string& dir) {
  const std::string prefix = "." + fs::path(dir).filename().string() + ".panelboot-";
  for (const auto& e : fs::directory_iterator(fs::path(dir).parent_path()))
    if (e.path().filename().string().rfind(prefix, 0) == 0) fs::remove_all(e.path());
}

// Staging folders left beside `dir` (.<name>.panelboot-XXXXXX).
int staging_folders(const std::string& dir) {
  int n = 0;
  const std::string prefix = "." + fs::path(dir).filename().string() + ".panelboot-";
  for (const auto& e : fs::directory_iterator(fs::path(dir).parent_path()))
    n += e.path().filename().string().rfind(prefix, 0) == 0;
  return n;
}

const json& quick_report() {
  static const json j = [] {
    const std::string dir = pbtest::temp_path("_report");
    const pbtest::ProcRun r = pbtest::run_process({"replicate", "--quick", "--out", dir}, slow());
    EXPECT_EQ(r.status, 0) << r.err;
    json res = json::parse(slurp(dir + "/results.json"));
    res["__dir"] = dir;
    res["__stdout"] = r.out;
    return res;
  }();
  return j;
}

TEST(Replicate, QuickRunHasEverySectionAndItsFiles) {
  const json& r = quick_report();
  const std::string dir = r["__dir"];
  for (const char* id : {"baseline", "lag", "robustness", "heterogeneity", "mediation", "iv", "threshold", "audit"}) {
    bool found = false;
    for (const json& s : r["sections"])
      if (s["id"] == id) {
        found = true;
        EXPECT_EQ(s["status"], "ok") << id;
      }
    EXPECT_TRUE(found) << id;
  }
  EXPECT_TRUE(r["simulated_data"].get<bool>());
  EXPECT_EQ(r["specifications"].size(), 11u);  // 2 + 1 + 3 + 5
  for (const char* f : {"report.md", "tables.tex", "results.json", "study_data.csv", ".panelboot-report", "lr_gamma.png",
                        "power_curves.png", "bootstrap_t.png"})
    EXPECT_TRUE(fs::exists(dir + "/" + f)) << f;
  const std::string md = slurp(dir + "/report.md");
  for (const char* h : {"## Table 5", "## Table 6", "## Table 7", "## Table 8", "## Table 9", "## Instrumental variables",
                        "## Panel threshold", "## Audit", "Simulated data", "![Power curves per split](power_curves.png)"})
    EXPECT_NE(md.find(h), std::string::npos) << h;
  // the figures' captions, as their script gave them: the baseline t* against the t(G-1) density
  EXPECT_NE(md.find("with the t(29) density; observed t = "), std::string::npos);
  EXPECT_NE(md.find("- `lr_gamma.png`: LR(gamma) of the single-threshold search"), std::string::npos);
  const std::string tex = slurp(dir + "/tables.tex");
  EXPECT_NE(tex.find("\\toprule"), std::string::npos);
  EXPECT_NE(tex.find("Table 8"), std::string::npos);
  EXPECT_NE(r["__stdout"].get<std::string>().find("Table 8 Central"), std::string::npos);
  // the audit flags the paper's known inconsistencies (its own test checks each rule)
  std::set<std::string> kinds;
  for (const json& f : r["audit"]["flags"]) kinds.insert(f["kind"].get<std::string>());
  for (const char* k : {"se_swapped", "stars_reference", "share_mismatch", "magnitude_outlier", "method_mismatch",
                        "decomposition_mismatch"})
    EXPECT_TRUE(kinds.count(k)) << k;
}

TEST(Replicate, EveryTableNumberEqualsItsRecordedFitAndWildCommands) {
  const json& r = quick_report();
  const std::string dir = r["__dir"];
  std::vector<json> specs(r["specifications"].begin(), r["specifications"].end());
  for (const json& s : r["mediation"]["equations"]) specs.push_back(s);
  for (const json& s : specs) {
    SCOPED_TRACE(s["id"].get<std::string>());
    const json fit = run_recorded(s["fit_command"], dir)["models"][0];
    ASSERT_EQ(fit["coefficients"].size(), s["fit"]["coefficients"].size());
    for (std::size_t i = 0; i < fit["coefficients"].size(); ++i)
      for (const char* k : {"name", "estimate", "std_error", "t_stat", "p_value", "ci_low", "ci_high"})
        EXPECT_EQ(fit["coefficients"][i][k], s["fit"]["coefficients"][i][k]) << k;
    EXPECT_EQ(fit["nobs"], s["fit"]["nobs"]);
    for (const json& row : s["interest"]) {
      for (const char* which : {"wild", "webb"}) {
        if (row[which].is_null()) continue;
        const json w = run_recorded(row[which]["command"], dir)["tests"][0];
        for (const char* k : {"t_stat", "p_value", "ci_low", "ci_high", "n_boot", "enumerated"})
          EXPECT_EQ(w[k], row[which][k]) << which << " " << k;
      }
    }
  }
  // Webb's weights beside the splits with G <= 11 only; exact enumeration at G = 8
  for (const json& s : r["specifications"]) {
    const bool few = s["fit"]["n_clusters"].get<int>() <= 11;
    EXPECT_EQ(s["interest"][0]["webb"].is_null(), !few) << s["id"];
    if (s["id"] == "table8_Central") {
      EXPECT_TRUE(s["interest"][0]["wild"]["enumerated"].get<bool>());
    }
  }
}

TEST(Replicate, PowerThresholdIvAndMediationEqualTheirCommands) {
  const json& r = quick_report();
  const std::string dir = r["__dir"];
  const json pw = run_recorded(r["power"]["command_line"], dir);
  ASSERT_EQ(pw["results"].size(), r["power"]["results"].size());
  for (std::size_t i = 0; i < pw["results"].size(); ++i)
    for (const char* k : {"split", "group", "effect", "test", "rejection_rate", "rejections"})
      EXPECT_EQ(pw["results"][i][k], r["power"]["results"][i][k]) << k;
  EXPECT_EQ(pw["mde"], r["power"]["mde"]);
  // each split's power row comes from the power study's cells, for every test, and its MDE
  int copied = 0;
  for (const json& s : r["specifications"]) {
    if (s["split"].is_null()) continue;
    const json& p = s["interest"][0]["power"];
    for (const json& c : pw["results"]) {
      if (c["split"] != s["split"] || c["group"] != s["group"]) continue;
      const std::string test = c["test"];
      if (c["effect"] == 0) {
        EXPECT_EQ(p["size"][test], c["rejection_rate"]) << test;
        ++copied;
      }
      if (c["effect"] == pw["full_sample_estimate"]) {
        EXPECT_EQ(p["power"][test], c["rejection_rate"]) << test;
        ++copied;
      }
    }
    for (const json& m : pw["mde"])
      if (m["split"] == s["split"] && m["group"] == s["group"]) {
        EXPECT_EQ(p["mde"][m["test"].get<std::string>()], m["effect"]);
        ++copied;
      }
  }
  EXPECT_EQ(copied, 5 * 3 * 3);  // 5 groups x (size, power, MDE) x (crve, wild, wild-webb)
  for (const char* key : {"hansen", "two_way"}) {
    SCOPED_TRACE(key);
    const json th = run_recorded(r["threshold"][key]["command_line"], dir);
    EXPECT_EQ(th["tests"], r["threshold"][key]["tests"]);
    EXPECT_EQ(th["models"], r["threshold"][key]["models"]);
    EXPECT_EQ(th["lr_curve"], r["threshold"][key]["lr_curve"]);
  }
  const json ivfit = run_recorded(r["iv"]["fit_command"], dir)["models"][0];
  EXPECT_EQ(ivfit["coefficients"], r["iv"]["fit"]["coefficients"]);
  EXPECT_EQ(ivfit["estimator"], "2sls");
  const json ivw = run_recorded(r["iv"]["wild_command"], dir)["tests"];
  ASSERT_EQ(ivw.size(), 2u);  // WRE and AR
  for (std::size_t i = 0; i < 2; ++i)
    for (const char* k : {"test", "p_value", "ci_low", "ci_high"}) EXPECT_EQ(ivw[i][k], r["iv"]["wild"][i][k]) << k;
  // the mediation's a and b are the two equations' coefficients, with their clustered SEs
  const json& m = r["mediation"];
  for (const json& c : m["equations"][0]["fit"]["coefficients"])
    if (c["name"] == "rgzn") {
      EXPECT_EQ(m["a"], c["estimate"]);
      EXPECT_EQ(m["se_a"], c["std_error"]);
    }
  for (const json& c : m["equations"][1]["fit"]["coefficients"])
    if (c["name"] == "tec") {
      EXPECT_EQ(m["b"], c["estimate"]);
      EXPECT_EQ(m["se_b"], c["std_error"]);
    }
  EXPECT_EQ(m["total_effect"], r["specifications"][1]["interest"][0]["estimate"]);
  EXPECT_DOUBLE_EQ(m["share_mediated"].get<double>(), m["indirect"].get<double>() / m["total_effect"].get<double>());
  const json& h = r["baseline_bootstrap"]["histogram"];
  std::int64_t total = 0;
  for (const json& c : h["counts"]) total += c.get<std::int64_t>();
  EXPECT_EQ(total, r["baseline_bootstrap"]["n_boot"].get<std::int64_t>());
  EXPECT_EQ(r["baseline_bootstrap"]["df"], 29);
}

// Starts replicate with stderr piped; once `marker` appears there, sends `sig`. Returns the wait status.
int run_and_signal(const std::vector<std::string>& args, const std::string& marker, int sig, std::string& err) {
  int p[2];
  if (pipe(p) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(p[1], 2);
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    close(p[0]);
    close(p[1]);
    pbtest::exec_panelboot(args);
  }
  close(p[1]);
  char buf[4096];
  bool sent = false;
  ssize_t got;
  while ((got = read(p[0], buf, sizeof buf)) > 0) {
    err.append(buf, static_cast<std::size_t>(got));
    if (!sent && err.find(marker) != std::string::npos) {
      kill(pid, sig);
      sent = true;
    }
  }
  close(p[0]);
  int st = 0;
  waitpid(pid, &st, 0);
  return st;
}

TEST(Replicate, AnInterruptedRunLeavesThePreviousReportAndOtherFilesUntouched) {
  const std::string dir = pbtest::temp_path("_report");
  fs::create_directory(dir);
  std::ofstream(dir + "/notes.txt") << "my notes\n";
  std::ofstream(dir + "/console.log") << "a log being written\n";
  const pbtest::ProcRun first =
      pbtest::run_process({"replicate", "--quick", "--out", dir}, slow());
  ASSERT_EQ(first.status, 0) << first.err;
  const auto before = folder_bytes(dir);
  EXPECT_EQ(before.at("notes.txt"), "my notes\n");
  EXPECT_EQ(before.at("console.log"), "a log being written\n");
  // killed once the second section has started: the sections after it take seconds at these sizes
  for (int sig : {SIGKILL, SIGTERM}) {
    SCOPED_TRACE(sig);
    std::string err;
    const int st = run_and_signal({"replicate", "--out", dir, "--seed", "7", "--B", "99999"}, "replicate [2/8]", sig, err);
    EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == sig) << err;
    EXPECT_EQ(folder_bytes(dir), before);
  }
  // SIGTERM removed its staging folder (SIGKILL cannot: one is left beside the report)
  EXPECT_EQ(staging_folders(dir), 1);
  remove_staging_folders(dir);
  // a finished run replaces its own files and keeps the others, byte for byte
  const pbtest::ProcRun again =
      pbtest::run_process({"replicate", "--quick", "--seed", "8", "--out", dir}, slow());
  ASSERT_EQ(again.status, 0) << again.err;
  const auto after = folder_bytes(dir);
  EXPECT_EQ(after.at("notes.txt"), "my notes\n");
  EXPECT_EQ(after.at("console.log"), "a log being written\n");
  EXPECT_NE(after.at("results.json"), before.at("results.json"));
  EXPECT_EQ(after.size(), before.size());
}

// A figure script that writes one figure, then says so through a marker file and waits.
std::string slow_figure_script(const std::string& marker) {
  const std::string path = pbtest::write_temp("#!/bin/sh\nprintf png > \"$2/bootstrap_t.png\"\n: > " + marker +
                                              "\nexec sleep 30\n", ".sh");
  fs::permissions(path, fs::perms::owner_all);
  return path;
}

TEST(Replicate, ASignalWhileTheFiguresAreDrawnLeavesNothingBehind) {
  const std::string dir = pbtest::temp_path("_report"), marker = pbtest::temp_path(".marker");
  fs::create_directory(dir);
  std::ofstream(dir + "/notes.txt") << "mine\n";
  const auto before = folder_bytes(dir);
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    setenv("PANELBOOT_PLOT_REPORT", slow_figure_script(marker).c_str(), 1);
    execl(pbtest::panelboot_exe().c_str(), "panelboot", "replicate", "--quick", "--out", dir.c_str(), nullptr);
    _exit(127);
  }
  for (int i = 0; i < 6000 && !fs::exists(marker); ++i) usleep(10000);
  ASSERT_TRUE(fs::exists(marker)) << "the figure script never ran";
  kill(pid, SIGTERM);
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM);
  EXPECT_EQ(folder_bytes(dir), before);
  EXPECT_EQ(staging_folders(dir), 0);  // the figure drawn into it removed with it
}

TEST(Replicate, OldFiguresGoAndChangedFilesStay) {
  const std::string dir = pbtest::temp_path("_report");
  const pbtest::ProcRun first = pbtest::run_process({"replicate", "--quick", "--out", dir}, slow());
  ASSERT_EQ(first.status, 0) << first.err;
  ASSERT_TRUE(fs::exists(dir + "/power_curves.png"));
  // without the figure script the earlier run's figures (another seed, another level) are removed
  pbtest::ProcOptions no_plot = slow();
  no_plot.env = {"PANELBOOT_PLOT_REPORT=/nonexistent/plot-report"};
  const pbtest::ProcRun second =
      pbtest::run_process({"replicate", "--quick", "--level", "0.9", "--seed", "5", "--out", dir}, no_plot);
  ASSERT_EQ(second.status, 0) << second.err;
  for (const char* f : {"lr_gamma.png", "power_curves.png", "bootstrap_t.png"}) EXPECT_FALSE(fs::exists(dir + "/" + f)) << f;
  const std::string md = slurp(dir + "/report.md");
  EXPECT_NE(md.find("wild bootstrap 90% CI"), std::string::npos);
  EXPECT_EQ(md.find("95% CI"), std::string::npos);
  // a report file the user changed is theirs now: not replaced
  std::ofstream(dir + "/report.md", std::ios::app) << "my edit\n";
  const std::string edited = slurp(dir + "/report.md");
  const pbtest::ProcRun third = pbtest::run_process({"replicate", "--quick", "--out", dir}, slow());
  EXPECT_EQ(third.status, 2);
  EXPECT_NE(third.err.find("'report.md' has changed since panelboot wrote it"), std::string::npos) << third.err;
  EXPECT_EQ(slurp(dir + "/report.md"), edited);
}

TEST(Replicate, NeverReplacesWhatItDidNotWrite) {
  const std::string dir = pbtest::temp_path("_report");
  fs::create_directory(dir);
  std::ofstream(dir + "/report.md") << "the user's own report\n";
  const pbtest::ProcRun r = pbtest::run_process({"replicate", "--quick", "--out", dir});
  EXPECT_EQ(r.status, 2);
  EXPECT_EQ(r.stderr_lines(), 1) << r.err;
  EXPECT_NE(r.err.find("'report.md', which panelboot did not write"), std::string::npos) << r.err;
  EXPECT_EQ(slurp(dir + "/report.md"), "the user's own report\n");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator()), 1);
  EXPECT_EQ(staging_folders(dir), 0);
  // a symbolic link named like a report file is not replaced either
  const std::string dir2 = pbtest::temp_path("_report"), target = pbtest::write_temp("keep me\n", ".txt");
  fs::create_directory(dir2);
  fs::create_symlink(target, dir2 + "/results.json");
  const pbtest::ProcRun l = pbtest::run_process({"replicate", "--quick", "--out", dir2});
  EXPECT_EQ(l.status, 2) << l.err;
  EXPECT_NE(l.err.find("not a regular file"), std::string::npos) << l.err;
  EXPECT_EQ(slurp(target), "keep me\n");
  // --out a symbolic link to nothing
  const std::string dangling = pbtest::temp_path("_link");
  fs::create_symlink(pbtest::temp_path("_nowhere"), dangling);
  const pbtest::ProcRun d = pbtest::run_process({"replicate", "--quick", "--out", dangling});
  EXPECT_EQ(d.status, 2);
  EXPECT_NE(d.err.find("symbolic link to nothing"), std::string::npos) << d.err;
  // --out naming a regular file
  const std::string file = pbtest::write_temp("data\n", ".txt");
  const pbtest::ProcRun f = pbtest::run_process({"replicate", "--quick", "--out", file});
  EXPECT_EQ(f.status, 2);
  EXPECT_NE(f.err.find("exists and is not a folder"), std::string::npos) << f.err;
  EXPECT_EQ(slurp(file), "data\n");
}

// The embedded data's CSV with a column renamed and others dropped.
std::string edited_data(const std::string& rename_from, const std::string& rename_to, const std::vector<std::string>& drop,
                        const std::vector<std::pair<std::string, int>>& blank = {}) {
  std::ifstream in(std::string(PB_SOURCE_DIR) + "/data/nqpf_synthetic.csv");
  std::string line, out;
  std::vector<bool> keep;
  std::vector<std::string> names;
  int line_no = 0;  // 0: the header; 1: the first data row
  bool header = true;
  while (std::getline(in, line)) {
    std::vector<std::string> f;
    std::stringstream ss(line);
    std::string x;
    while (std::getline(ss, x, ',')) f.push_back(x);
    if (header) {
      for (std::string& name : f) {
        names.push_back(name);
        keep.push_back(std::find(drop.begin(), drop.end(), name) == drop.end());
        if (name == rename_from) name = rename_to;
      }
      header = false;
    }
    std::string row;
    bool first = true;
    for (std::size_t i = 0; i < f.size(); ++i) {
      bool empty = false;
      for (const auto& [name, at] : blank) empty = empty || (names[i] == name && line_no == at);
      if (!keep[i]) continue;
      row += (first ? "" : ",") + (empty ? std::string() : f[i]);
      first = false;
    }
    out += row + "\n";
    ++line_no;
  }
  return out;
}

TEST(Replicate, ASectionTheDataCannotRunIsSkippedWithItsReason) {
  // one missing fin (the threshold needs a balanced panel) and one missing tec (the mediation's
  // equations and total effect then share the 358 rows with both and fin; Table 5 has 359)
  const std::string data = pbtest::write_temp(edited_data("", "", {}, {{"fin", 40}, {"tec", 7}}));
  const std::string dir = pbtest::temp_path("_report");
  const pbtest::ProcRun run = pbtest::run_process({"replicate", "--quick", "--data", data, "--out", dir}, slow());
  ASSERT_EQ(run.status, 0) << run.err;
  const json r = json::parse(slurp(dir + "/results.json"));
  std::map<std::string, json> sections;
  for (const json& s : r["sections"]) sections[s["id"]] = s;
  EXPECT_EQ(sections["threshold"]["status"], "skipped");
  EXPECT_NE(sections["threshold"]["reason"].get<std::string>().find("balanced"), std::string::npos) << sections["threshold"];
  EXPECT_TRUE(r["threshold"].is_null());
  EXPECT_NE(run.err.find("Panel threshold in fin (Section 5.3) skipped"), std::string::npos) << run.err;
  ASSERT_EQ(sections["mediation"]["status"], "ok");
  const json& m = r["mediation"];
  EXPECT_EQ(m["nobs"], 358);
  EXPECT_EQ(m["equations"][0]["where"], "tec == tec and newqua == newqua");
  const json total = run_recorded(m["total_command"], dir)["models"][0];
  EXPECT_EQ(total["nobs"], 358);
  for (const json& c : total["coefficients"]) {
    if (c["name"] == "rgzn") {
      EXPECT_EQ(c["estimate"], m["total_effect"]);
    }
  }
  EXPECT_EQ(r["specifications"][1]["fit"]["nobs"], 359);
  EXPECT_NE(m["total_effect"], r["specifications"][1]["interest"][0]["estimate"]);
  EXPECT_NE(slurp(dir + "/report.md").find("*Skipped: "), std::string::npos);
}

TEST(Replicate, UserDataNamesTheMapOptionAndSkipsWhatItCannotRun) {
  const std::string data = pbtest::write_temp(edited_data("newqua", "nqp", {"region", "devlevel", "tec"}));
  const std::string dir = pbtest::temp_path("_report");
  const pbtest::ProcRun bad = pbtest::run_process({"replicate", "--quick", "--data", data, "--out", dir});
  EXPECT_EQ(bad.status, 2);
  EXPECT_EQ(bad.stderr_lines(), 1) << bad.err;
  EXPECT_NE(bad.err.find("needs the variable 'newqua'"), std::string::npos) << bad.err;
  EXPECT_NE(bad.err.find("--map newqua=YOURS"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(dir));
  EXPECT_EQ(staging_folders(dir), 0);
  // and without the figure script (no matplotlib, no python): the report says so, the rest is written
  pbtest::ProcOptions no_plot = slow();
  no_plot.env = {"PANELBOOT_PLOT_REPORT=/nonexistent/plot-report"};
  const pbtest::ProcRun ok = pbtest::run_process({"replicate", "--quick", "--data", data, "--map", "newqua=nqp", "--out", dir},
                                                 no_plot);
  ASSERT_EQ(ok.status, 0) << ok.err;
  const json r = json::parse(slurp(dir + "/results.json"));
  std::map<std::string, json> sections;
  for (const json& s : r["sections"]) sections[s["id"]] = s;
  EXPECT_EQ(sections["heterogeneity"]["status"], "skipped");
  EXPECT_NE(sections["heterogeneity"]["reason"].get<std::string>().find("region"), std::string::npos);
  EXPECT_EQ(sections["mediation"]["status"], "skipped");
  EXPECT_NE(sections["mediation"]["reason"].get<std::string>().find("--map tec="), std::string::npos);
  EXPECT_EQ(sections["baseline"]["status"], "ok");
  EXPECT_TRUE(r["power"].is_null());
  const std::string md = slurp(dir + "/report.md");
  EXPECT_NE(md.find("Skipped: no variable 'tec'"), std::string::npos);
  EXPECT_NE(ok.out.find("skipped: Table 9"), std::string::npos) << ok.out;
  EXPECT_NE(md.find("No figures were drawn: cannot run /nonexistent/plot-report"), std::string::npos);
  EXPECT_NE(ok.err.find("warning: figures not drawn"), std::string::npos) << ok.err;
  EXPECT_FALSE(fs::exists(dir + "/lr_gamma.png"));
  EXPECT_TRUE(fs::exists(dir + "/tables.tex") && fs::exists(dir + "/results.json"));
}

}  // namespace
