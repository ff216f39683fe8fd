// --shard, --checkpoint/--resume and `panelboot merge` (scale.hpp).
#include "scale.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <climits>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "panelboot/cli.hpp"
#include "panelboot/config.hpp"
#include "panelboot/error.hpp"
#include "panelboot/mpi.hpp"
#include "panelboot/run_file.hpp"
#include "panelboot/text.hpp"

namespace panelboot::cli {

namespace {

using nlohmann::json;

constexpr long long kMaxShards = 1000000;

std::vector<std::string> g_invocation;

// What a merge hands the command it runs again.
struct Replay {
  TaskRecords records;
  json header;               // the first part's
  std::string data;          // merge --data ("": the recorded one, relative to the shards' folder)
  std::vector<std::string> backends;
};
const Replay* g_replay = nullptr;

// Options that may differ between the shards of one run, or between a run and its resume: where
// the output goes, how the work is spread, and the data's path (its content is checked instead).
const std::set<std::string> kFreeOptions = {"--data",   "--shard",   "--checkpoint", "--checkpoint-every",
                                            "--resume", "--output",  "--format",     "--threads",
                                            "--backend", "--verbose", "--chunk",     "--batch",
                                            "--max-memory", "--help"};

std::string option_name(const CLI::Option* opt) {
  if (!opt->get_lnames().empty()) return "--" + opt->get_lnames().front();
  if (!opt->get_snames().empty()) return "-" + opt->get_snames().front();
  return opt->get_name();
}

// The options given to the command (those that decide its result), as name -> values.
json result_options(const CLI::App* app) {
  json out = json::object();
  for (const CLI::Option* opt : app->get_options()) {
    const std::string name = option_name(opt);
    if (opt->count() == 0 || kFreeOptions.count(name)) continue;
    out[name] = opt->results();
  }
  return out;
}

// A numeric column's values as doubles, whether owned or borrowed (borrowed integers hashed as the
// doubles they read as, a block at a time, without converting the column).
std::uint64_t hash_values(const Column& c, std::uint64_t h) {
  if (!c.borrowed_int) {
    const DoubleSpan v = c.values();
    return fnv1a(v.data(), v.size() * sizeof(double), h);
  }
  double block[4096];
  for (std::size_t r = 0; r < c.borrowed_rows;) {
    std::size_t k = 0;
    for (; k < 4096 && r < c.borrowed_rows; ++k, ++r) block[k] = static_cast<double>(c.borrowed_int[r]);
    h = fnv1a(block, k * sizeof(double), h);
  }
  return h;
}

// A data frame's content (names, types, every value's bits, text levels): what the checksum of
// the data covers, whatever the file's format or path.
std::uint64_t data_fingerprint(const DataFrame& df) {
  std::uint64_t h = fnv1a(nullptr, 0);
  const std::uint64_t rows = df.n_rows();
  h = fnv1a(&rows, sizeof rows, h);
  for (const Column& c : df.columns) {
    h = fnv1a(c.name.data(), c.name.size() + 1, h);
    const char type = c.is_string() ? 's' : 'n';
    h = fnv1a(&type, 1, h);
    if (!c.is_string()) {
      h = hash_values(c, h);
      continue;
    }
    h = fnv1a(c.codes.data(), c.codes.size() * sizeof(std::int32_t), h);
    for (const std::string& l : c.levels) h = fnv1a(l.data(), l.size() + 1, h);
  }
  return h;
}

std::string values_text(const json& v) {
  if (v.is_null()) return "not given";
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : " ") + x.get<std::string>();
  return "'" + printable(s, 80) + "'";
}

// The run header of a part or checkpoint as panelboot writes it; InvalidInput naming the file
// otherwise (a hand-edited or damaged file never reaches the comparisons or the replay).
void check_identity(const json& h, const std::string& path) {
  const std::string where = "'" + printable(path) + "'";
  const auto text = [&](const json& o, const char* name) {
    if (!o.is_object() || !o.contains(name) || !o.at(name).is_string())
      throw InvalidInput(where + ": its run header has no text '" + name + "'");
    return o.at(name).get<std::string>();
  };
  const std::string command = text(h, "command");
  if (command != "wild" && command != "threshold" && command != "power")
    throw InvalidInput(where + ": its run header names command '" + printable(command) + "', not wild, threshold or power");
  text(h, "panelboot");
  text(h, "cwd");
  text(h, "seed");
  text(h, "format");
  text(h, "output");
  text(h, "backend");
  const json& argv = h.contains("argv") ? h.at("argv") : json();
  if (!argv.is_array() || argv.empty() || argv[0] != command ||
      !std::all_of(argv.begin(), argv.end(), [](const json& a) { return a.is_string(); }))
    throw InvalidInput(where + ": its run header's 'argv' is not the command's arguments");
  text(h.contains("data") ? h.at("data") : json(), "source");
  const json& cs = h.contains("checksums") ? h.at("checksums") : json();
  text(cs, "data");
  text(cs, "options");
  text(cs, "seed");
  const json& opts = h.contains("options") ? h.at("options") : json();
  if (!opts.is_object()) throw InvalidInput(where + ": its run header has no 'options' object");
  for (const auto& [name, v] : opts.items())
    if (!v.is_array() || !std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_string(); }))
      throw InvalidInput(where + ": option " + printable(name) + " in its run header is not a list of values");
  if (h.contains("shard")) {
    const json& sh = h.at("shard");
    if (!sh.is_object() || !sh.contains("index") || !sh.contains("count") || !sh.at("index").is_number_unsigned() ||
        !sh.at("count").is_number_unsigned() || sh.at("index").get<std::uint64_t>() < 1 ||
        sh.at("index").get<std::uint64_t>() > sh.at("count").get<std::uint64_t>() ||
        sh.at("count").get<std::uint64_t>() > static_cast<std::uint64_t>(kMaxShards))
      throw InvalidInput(where + ": its shard is not i/n with 1 <= i <= n <= " + std::to_string(kMaxShards));
  }
}

// How two runs' identities differ ("" when they are the same run): the command, the version, the
// data, each option (named), the seed; with `shards`, the shard count too. Both checked by
// check_identity.
std::string identity_difference(const json& a, const json& b, bool shards) {
  const auto str = [](const json& o, const char* k) { return o.at(k).get<std::string>(); };
  if (str(a, "command") != str(b, "command"))
    return "the command (" + str(a, "command") + " vs " + str(b, "command") + ")";
  if (str(a, "panelboot") != str(b, "panelboot"))
    return "the panelboot version (" + str(a, "panelboot") + " vs " + str(b, "panelboot") + ")";
  const json &da = a.at("checksums"), &db = b.at("checksums");
  if (str(da, "data") != str(db, "data"))
    return "the data (checksum " + str(da, "data") + " of " + printable(str(a.at("data"), "source")) + " vs " +
           str(db, "data") + " of " + printable(str(b.at("data"), "source")) + ")";
  const json &oa = a.at("options"), &ob = b.at("options");
  std::set<std::string> names;
  for (const auto& [k, v] : oa.items()) names.insert(k);
  for (const auto& [k, v] : ob.items()) names.insert(k);
  for (const std::string& n : names) {
    const json va = oa.contains(n) ? oa.at(n) : json(), vb = ob.contains(n) ? ob.at(n) : json();
    if (va != vb) return "option " + printable(n) + " (" + values_text(va) + " vs " + values_text(vb) + ")";
  }
  if (str(a, "seed") != str(b, "seed")) return "the seed (" + str(a, "seed") + " vs " + str(b, "seed") + ")";
  if (shards) {
    const std::uint64_t na = a.at("shard").at("count").get<std::uint64_t>(), nb = b.at("shard").at("count").get<std::uint64_t>();
    if (na != nb) return "the shard count (" + std::to_string(na) + " vs " + std::to_string(nb) + ")";
  }
  return "";
}

std::string signal_name(int sig) { return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : std::to_string(sig); }

std::string current_folder() {
  std::error_code ec;
  const auto p = std::filesystem::current_path(ec);
  return ec ? std::string(".") : p.string();
}

bool file_exists(const std::string& path) {
  std::error_code ec;
  return std::filesystem::exists(path, ec);
}

// "i/n" read into i and n; the reason it is not a shard ("" when it is: 1 <= i <= n <= kMaxShards).
std::string parse_shard(const std::string& s, std::uint64_t& i, std::uint64_t& n) {
  const auto slash = s.find('/');
  char* end = nullptr;
  if (slash == std::string::npos) return "give the shard as i/n, e.g. 2/8";
  const long long si = std::strtoll(s.c_str(), &end, 10);
  if (end != s.c_str() + slash) return "give the shard as i/n, e.g. 2/8";
  const long long sn = std::strtoll(s.c_str() + slash + 1, &end, 10);
  if (*end || slash + 1 == s.size()) return "give the shard as i/n, e.g. 2/8";
  if (sn < 1 || sn > kMaxShards) return "the shard count n must be 1 to " + std::to_string(kMaxShards);
  if (si < 1 || si > sn) return "the shard index i must be 1 to n (" + std::to_string(sn) + ")";
  i = static_cast<std::uint64_t>(si);
  n = static_cast<std::uint64_t>(sn);
  return "";
}

CLI::Validator shard_spec() {
  return CLI::Validator(
      [](std::string& s) {
        std::uint64_t i = 0, n = 0;
        return parse_shard(s, i, n);
      },
      "i/n with 1 <= i <= n <= " + std::to_string(kMaxShards));
}

// A checkpoint is a regular file panelboot writes, reads back and removes: a symlink (whose
// removal would take the link, not the file), a device or a FIFO is refused.
void refuse_unusual_checkpoint(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;  // not there yet
  const std::string kind = S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISDIR(st.st_mode) ? "a directory"
                           : !S_ISREG(st.st_mode)                   ? "not a regular file (a device, FIFO or socket)"
                                                                    : "";
  if (!kind.empty())
    throw InvalidInput("--checkpoint '" + printable(path) + "' is " + kind +
                       "; name a regular file (or a new one) that panelboot may write, read back and remove");
}

}  // namespace

void set_invocation(const std::vector<std::string>& args) { g_invocation = args; }

void add_scale_options(CLI::App* app, ScaleCli& s) {
  app->add_option("--shard", s.shard,
                  "Compute share i of n of each test's (power: each group's) replications and write a partial result "
                  "to --output (whatever --format) "
                  "for 'panelboot merge' to combine; 1-based, so that "
                  "--shard ${SLURM_ARRAY_TASK_ID}/${SLURM_ARRAY_TASK_COUNT} works with --array=1-n (MPI: start the "
                  "command with mpirun -np N, or srun --mpi=pmix, and the ranks share the replications)")
      ->check(shard_spec());
  auto* cp = app->add_option("--checkpoint", s.checkpoint,
                             "Save the completed replications' counts to FILE (atomically, every --checkpoint-every "
                             "seconds and on SIGINT/SIGTERM, then exit 130/143); --resume continues it")
                 ->check(file_name());
  app->add_option("--checkpoint-every", s.checkpoint_every, "Seconds between checkpoint writes")
      ->check(real_in(0.1, 86400, false))
      ->capture_default_str()
      ->needs(cp);
  app->add_flag("--resume", s.resume,
                "Continue the run saved in --checkpoint FILE (with the same data, options and seed; any thread "
                "count); without that file, start afresh")
      ->needs(cp);
}

ScaleRun::ScaleRun(std::string command, const CLI::App* app, const ScaleCli& s, CommonOptions& o,
                   std::string checkpoint_refusal)
    : command_(std::move(command)), app_(app), s_(s), o_(o) {
  if (g_replay) {  // merge put its --format, --output and --data in the arguments
    o.backend = "cpu";
    // merge runs the command in the shards' folder when it exists, so a relative --data (and the
    // report's name for it) is the shards'
    if (g_replay->data.empty() && !o.data.empty() && !file_exists(o.data))
      throw InvalidInput("the shards read their data from '" + printable(o.data) +
                         "', which is not there now: merge reads the data again to rebuild the model; give its new "
                         "place with merge --data FILE");
    s_ = ScaleCli{};
    return;
  }
  if (!s.shard.empty()) parse_shard(s.shard, shard_index_, shard_count_);  // checked as it was parsed
  if (!s.checkpoint.empty() && !checkpoint_refusal.empty()) throw InvalidInput(checkpoint_refusal);
  if (!s.checkpoint.empty() && !worker()) refuse_unusual_checkpoint(s.checkpoint);
  const bool stream = o.data == "-" || o.data.rfind("/dev/", 0) == 0;  // read once, by one process
  if (mpi::session() && stream)
    throw InvalidInput("under MPI every rank reads the data itself: give --data a file that every rank can read, not a stream");
  if ((partial() || !s.checkpoint.empty()) && stream)
    throw InvalidInput(std::string(partial() ? "--shard" : "--checkpoint") + " needs --data in a file: " +
                       (partial() ? "merge" : "--resume") + " reads the data again, and a stream can be read only once");
}

ScaleRun::~ScaleRun() = default;

std::vector<NamedPath> ScaleRun::paths() const {
  if (s_.checkpoint.empty()) return {};
  return {{"--checkpoint", s_.checkpoint}};
}

// The run's identity, made once the data is read (start()); every checkpoint save and the partial
// file write it as it is.
std::string ScaleRun::make_header() const {
  json h;
  h["command"] = command_;
  h["panelboot"] = PANELBOOT_VERSION;
  h["argv"] = g_invocation;
  h["cwd"] = current_folder();
  h["data"] = {{"source", o_.data.empty() ? std::string("<embedded>") : o_.data}, {"rows", n_rows_}};
  h["options"] = result_options(app_);
  h["seed"] = seed_;
  const std::string options = h["options"].dump();
  h["checksums"] = {{"data", fingerprint_}, {"options", hex64(fnv1a(options.data(), options.size()))}, {"seed", seed_}};
  if (partial()) h["shard"] = {{"index", shard_index_}, {"count", shard_count_}};
  h["format"] = o_.format;
  h["output"] = o_.output;
  h["backend"] = backend_;
  h["threads"] = threads_in_use();
  return h.dump();
}

void ScaleRun::save_checkpoint(const TaskRecords& records) const {
  RunFile f{"checkpoint", header_, records};
  PendingOutputs file;
  file.add(s_.checkpoint, run_file_text(f));
  file.commit();
}

ReplicationRunner* ScaleRun::start(const DataFrame& df, std::uint64_t seed,
                                   const std::string& backend, std::ostream& err) {
  n_rows_ = df.n_rows();
  seed_ = std::to_string(seed);
  backend_ = backend;
  mpi::Session* ranks = mpi::session();
  // The run's identity, with the checksum of every value of the data (about 1 ns a byte), is made
  // only where it is written or compared: a merge, MPI ranks, a checkpoint, a shard.
  if (g_replay || ranks || !s_.checkpoint.empty() || partial()) {
    fingerprint_ = hex64(data_fingerprint(df));
    header_ = make_header();
  }
  if (g_replay) {
    const std::string recorded = g_replay->header.at("checksums").at("data").get<std::string>();
    if (recorded != fingerprint_)
      throw InvalidInput("the data '" + printable(o_.data.empty() ? "<embedded>" : o_.data) +
                         "' is not the data the shards ran on (checksum " + fingerprint_ + ", the parts' " + recorded +
                         "); merge reads the data again to rebuild the model: give the same file with --data");
    runner_ = std::make_unique<ReplayRunner>(g_replay->records);
    return runner_.get();
  }
  TaskRecords resumed;
  if (!s_.checkpoint.empty() && !worker()) resumed = resume_checkpoint(err);
  if (ranks) {  // the ranks agree that they run one job, then share its replications
    ranks->agree_on_run(header_, [](const std::string& a, const std::string& b) {
      const json ha = json::parse(a), hb = json::parse(b);
      const bool shard = ha.contains("shard");
      if (shard != hb.contains("shard")) return std::string("the shard (--shard)");
      const std::string diff = identity_difference(ha, hb, shard);
      if (!diff.empty() || !shard) return diff;
      return ha.at("shard") == hb.at("shard") ? std::string() : std::string("the shard (--shard)");
    });
    if (!s_.checkpoint.empty()) reset_stop_signal();
    mpi::MpiRunner::Save save;
    if (!s_.checkpoint.empty() && ranks->root()) save = [this](const TaskRecords& r) { save_checkpoint(r); };
    runner_ = std::make_unique<mpi::MpiRunner>(*ranks, std::move(resumed), s_.checkpoint.empty() ? 0.0 : s_.checkpoint_every,
                                               save, shard_index_, shard_count_);
    return runner_.get();
  }
  if (!s_.checkpoint.empty()) {
    reset_stop_signal();
    runner_ = std::make_unique<CheckpointRunner>(
        std::move(resumed), s_.checkpoint_every, [this](const TaskRecords& r) { save_checkpoint(r); }, shard_index_,
        shard_count_);
    return runner_.get();
  }
  if (partial()) {
    runner_ = std::make_unique<ShardRunner>(shard_index_, shard_count_);
    return runner_.get();
  }
  if (in_process_run()) {  // blocks of ~0.5 s with a check for a stop signal between them
    reset_stop_signal();
    runner_ = std::make_unique<BlockRunner>();
    return runner_.get();
  }
  return nullptr;
}

// A checkpoint to continue (--resume with its file there), checked to be this run's; none when
// there is no file yet (said on `err`); refused when the file is there without --resume.
TaskRecords ScaleRun::resume_checkpoint(std::ostream& err) const {
  TaskRecords resumed;
  if (file_exists(s_.checkpoint) && !s_.resume)
    throw InvalidInput("checkpoint '" + printable(s_.checkpoint) +
                       "' exists: add --resume to continue that run, or remove the file to start afresh");
  if (s_.resume && !file_exists(s_.checkpoint)) {
    err << "panelboot: no checkpoint '" << printable(s_.checkpoint) << "' yet; starting afresh\n";
    return resumed;
  }
  if (!s_.resume) return resumed;
  RunFile f = parse_run_file(slurp_file(s_.checkpoint), s_.checkpoint);
  if (f.kind != "checkpoint")
    throw InvalidInput("'" + printable(s_.checkpoint) + "' is a shard's partial result, not a checkpoint");
  const json fh = json::parse(f.header_json);
  check_identity(fh, s_.checkpoint);
  const std::string diff = identity_difference(fh, json::parse(header_), false);
  if (!diff.empty())
    throw InvalidInput("checkpoint '" + printable(s_.checkpoint) + "' was written by another run: it differs in " + diff +
                       "; resume with the same data, options and seed, or remove the file");
  if (fh.contains("shard") != partial() ||
      (partial() && (fh.at("shard").at("index").get<std::uint64_t>() != shard_index_ ||
                     fh.at("shard").at("count").get<std::uint64_t>() != shard_count_)))
    throw InvalidInput("checkpoint '" + printable(s_.checkpoint) + "' was written by another --shard; resume with the same one");
  resumed = std::move(f.tasks);
  std::uint64_t done = 0;
  for (const TaskRecord& r : resumed) done += r.done();
  err << "panelboot: resuming from checkpoint '" << printable(s_.checkpoint) << "' (" << done << " replications done)\n";
  return resumed;
}

void ScaleRun::run(const std::function<void()>& engine) {
  auto* checkpoint = dynamic_cast<CheckpointRunner*>(runner_.get());
  auto* ranks = dynamic_cast<mpi::MpiRunner*>(runner_.get());
  if (ranks && !ranks->checkpointing()) ranks = nullptr;
  try {
    // a checkpointing run records SIGINT/SIGTERM during the whole engine (fits, searches and the
    // steps between tasks too) and stops at the next check, its checkpoint saved; every rank of
    // a checkpointing MPI job goes on until rank 0 stops it
    std::optional<DeferStopSignals> defer;
    if (checkpoint || ranks) defer.emplace();
    engine();
    if ((checkpoint || (ranks && !worker())) && stop_signal_received()) {
      if (checkpoint) checkpoint->save_now();
      if (ranks) ranks->save_now();
      throw Interrupted(stop_signal_received(), "");
    }
  } catch (const Interrupted& e) {
    if (s_.checkpoint.empty()) throw Interrupted(e.signal(), "interrupted by " + signal_name(e.signal()));
    std::uint64_t done = 0;
    for (const TaskRecord& r : records()) done += r.done();
    throw Interrupted(e.signal(), "interrupted by " + signal_name(e.signal()) + ": checkpoint '" +
                                      printable(s_.checkpoint) + "' holds " + std::to_string(done) +
                                      " replications of the tasks begun; run the same command with --resume to finish");
  }
  if (const auto* replay = dynamic_cast<const ReplayRunner*>(runner_.get())) {
    const std::vector<std::string> unused = replay->unused();
    if (!unused.empty())
      throw InvalidInput("the parts hold task '" + printable(unused.front()) +
                         "', which the recorded command does not run: they do not belong to it");
  }
}

TaskRecords ScaleRun::records() const {
  if (const auto* sh = dynamic_cast<const ShardRunner*>(runner_.get())) return sh->records();
  if (const auto* cp = dynamic_cast<const CheckpointRunner*>(runner_.get())) return cp->records();
  if (const auto* mp = dynamic_cast<const mpi::MpiRunner*>(runner_.get())) return mp->records();
  return {};
}

std::string ScaleRun::partial_text() const { return run_file_text(RunFile{"partial", header_, records()}); }

bool ScaleRun::worker() const { return !g_replay && mpi::session() && !mpi::session()->root(); }

std::string ScaleRun::backend_name(const std::string& here) const {
  if (!g_replay) return here;
  std::string s;
  for (const std::string& b : g_replay->backends) s += (s.empty() ? "" : "+") + b;
  return s.empty() ? here : s;
}

void ScaleRun::finished(std::ostream& err) {
  if (s_.checkpoint.empty() || g_replay) return;
  if (std::remove(s_.checkpoint.c_str()) == 0 && o_.verbose)
    err << "panelboot: the run is complete; checkpoint '" << printable(s_.checkpoint) << "' removed\n";
}

// ---- panelboot merge ----

namespace {

struct MergeCli {
  std::vector<std::string> parts;
  std::string format, output, data;
};

struct Part {
  std::string path;
  RunFile file;
  json header;
};

Part read_part(const std::string& path) {
  if (!file_exists(path)) throw InvalidInput("part '" + printable(path) + "' does not exist");
  Part p{path, parse_run_file(slurp_file(path), path), {}};
  if (p.file.kind != "partial")
    throw InvalidInput("'" + printable(path) + "' is a checkpoint, not a shard's partial result: continue it with --resume");
  p.header = json::parse(p.file.header_json);
  check_identity(p.header, path);
  if (!p.header.contains("shard")) throw InvalidInput("'" + printable(path) + "' names no shard");
  if (p.header.at("panelboot") != PANELBOOT_VERSION)
    throw InvalidInput("part '" + printable(path) + "' was written by panelboot " +
                       p.header.at("panelboot").get<std::string>() + ", this is " + PANELBOOT_VERSION +
                       ": merge with the version that ran the shards (the replay must compute what they computed)");
  return p;
}

// Every part of one run, each shard once: else a message naming the parts.
void check_parts(const std::vector<Part>& parts) {
  const Part& first = parts.front();
  for (const Part& p : parts) {
    const std::string diff = identity_difference(first.header, p.header, true);
    if (!diff.empty())
      throw InvalidInput("parts '" + printable(first.path) + "' and '" + printable(p.path) + "' come from different runs: " +
                         diff);
  }
  const std::uint64_t n = first.header.at("shard").at("count").get<std::uint64_t>();
  std::map<std::uint64_t, std::string> seen;
  for (const Part& p : parts) {
    const std::uint64_t i = p.header.at("shard").at("index").get<std::uint64_t>();
    if (seen.count(i))
      throw InvalidInput("parts '" + printable(seen[i]) + "' and '" + printable(p.path) + "' are both shard " +
                         std::to_string(i) + "/" + std::to_string(n));
    seen[i] = p.path;
  }
  if (seen.size() == n) return;
  std::string missing;
  std::uint64_t n_missing = 0;
  for (std::uint64_t i = 1; i <= n && n_missing < 6; ++i)
    if (!seen.count(i)) missing += (n_missing++ ? ", " : "") + std::to_string(i) + "/" + std::to_string(n);
  if (n - seen.size() > n_missing) missing += " and " + std::to_string(n - seen.size() - n_missing) + " more";
  throw InvalidInput("shard " + missing + " missing: merge needs every shard of the run");
}

// The parts' segments, task by task: each task in every part, its ranges tiling it once.
TaskRecords assemble(const std::vector<Part>& parts) {
  TaskRecords all;
  for (const TaskRecord& r : parts.front().file.tasks) all.push_back(TaskRecord{r.spec, {}});
  for (const Part& p : parts) {
    if (p.file.tasks.size() != all.size())
      throw InvalidInput("part '" + printable(p.path) + "' holds " + std::to_string(p.file.tasks.size()) +
                         " tasks, part '" + printable(parts.front().path) + "' " + std::to_string(all.size()));
    for (std::size_t t = 0; t < all.size(); ++t) {
      const TaskRecord& r = p.file.tasks[t];
      const TaskSpec& a = all[t].spec;
      if (r.spec.key != a.key || r.spec.n_rep != a.n_rep || r.spec.align != a.align || r.spec.n_counts != a.n_counts ||
          r.spec.width != a.width)
        throw InvalidInput("part '" + printable(p.path) + "' holds task '" + printable(r.spec.key) + "' (" +
                           std::to_string(r.spec.n_rep) + " replications, " + std::to_string(r.spec.width) +
                           " values each) where part '" + printable(parts.front().path) + "' holds '" + printable(a.key) +
                           "' (" + std::to_string(a.n_rep) + ", " + std::to_string(a.width) + ")");
      for (const Segment& s : r.segments) all[t].add(s, "part '" + printable(p.path) + "'");
    }
  }
  for (const TaskRecord& r : all)
    if (!r.complete()) {
      const RepRange gap = r.missing().front();
      throw InvalidInput("task '" + printable(r.spec.key) + "': no part holds replications " + std::to_string(gap.begin) +
                         ".." + std::to_string(gap.end));
    }
  return all;
}

// The shards' command line for the merge's run: without the shard, its output and any
// checkpoint; the merge's --format, --output and --data in place of the recorded ones.
std::vector<std::string> replay_arguments(const std::vector<std::string>& recorded, const MergeCli& m) {
  std::set<std::string> drop = {"--shard", "--output", "--checkpoint", "--checkpoint-every"};
  if (!m.format.empty()) drop.insert("--format");
  if (!m.data.empty()) drop.insert("--data");
  std::vector<std::string> out;
  for (std::size_t i = 0; i < recorded.size(); ++i) {
    const std::string& a = recorded[i];
    if (a == "--resume") continue;
    const std::string name = a.substr(0, a.find('='));
    if (drop.count(name)) {
      if (name == a) ++i;  // its value is the next argument
      continue;
    }
    out.push_back(a);
  }
  if (!m.format.empty()) out.insert(out.end(), {"--format", m.format});
  if (!m.output.empty()) out.insert(out.end(), {"--output", m.output});
  if (!m.data.empty()) out.insert(out.end(), {"--data", m.data});
  return out;
}

int cmd_merge(const MergeCli& m, const Streams& s) {
  std::vector<NamedPath> inputs;
  for (const std::string& p : m.parts) inputs.push_back({"part", p});
  if (!m.output.empty()) check_output_paths({{"--output", m.output}}, inputs);
  std::vector<Part> parts;
  for (const std::string& path : m.parts) parts.push_back(read_part(path));
  check_parts(parts);
  Replay replay;
  replay.records = assemble(parts);
  replay.header = parts.front().header;
  for (const Part& p : parts) {
    const std::string b = p.header.value("backend", "");
    if (std::find(replay.backends.begin(), replay.backends.end(), b) == replay.backends.end()) replay.backends.push_back(b);
  }
  // the command runs in the shards' folder (when it is here), as the single run would have:
  // relative --data and side files resolve there; merge's own --output and --data keep the
  // meaning they have where merge was started
  MergeCli here = m;
  std::error_code ec;
  const std::filesystem::path start = std::filesystem::current_path(ec);
  if (!here.output.empty()) here.output = std::filesystem::absolute(here.output, ec).string();
  if (!here.data.empty()) here.data = std::filesystem::absolute(here.data, ec).string();
  replay.data = here.data;
  const std::vector<std::string> argv = replay_arguments(replay.header.at("argv").get<std::vector<std::string>>(), here);
  const std::string folder = replay.header.at("cwd").get<std::string>();
  const bool moved = std::filesystem::is_directory(folder, ec) && ::chdir(folder.c_str()) == 0;
  g_replay = &replay;
  struct Reset {
    bool moved;
    std::filesystem::path start;
    ~Reset() {
      g_replay = nullptr;
      if (moved && ::chdir(start.c_str()) != 0) {
      }
    }
  } reset{moved, start};
  return run_cli(argv, s.out, s.notices);
}

}  // namespace

Command register_merge(CLI::App& app) {
  auto m = std::make_shared<MergeCli>();
  CLI::App* cmd = app.add_subcommand(
      "merge", "Combine the partial results of a run's shards (--shard i/n) into exactly what the single run writes");
  cmd->add_option("parts", m->parts, "The shards' partial-result files, in any order")->required()->check(file_name());
  cmd->add_option("--format", m->format,
                  "text | json | markdown | latex | csv, as the command offers (default: the --format the shards "
                  "were given)");
  cmd->add_option("--output", m->output, "Write to FILE instead of standard output")->check(file_name());
  cmd->add_option("--data", m->data,
                  "The data, when it is no longer where the shards read it (merge reads it again to rebuild the "
                  "model; its content must be the same)")
      ->check(file_name());
  cmd->footer("Example: panelboot merge part-*.json --format json --output result.json");
  return {cmd, [m](const Streams& s) { return cmd_merge(*m, s); }};
}

}  // namespace panelboot::cli
