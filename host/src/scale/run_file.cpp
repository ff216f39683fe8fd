// Partial results and checkpoints as JSON (panelboot/run_file.hpp).
#include "panelboot/run_file.hpp"

#include <array>
#include <cstring>
#include <nlohmann/json.hpp>

#include "panelboot/error.hpp"
#include "panelboot/text.hpp"

namespace panelboot {

namespace {

constexpr int kRunFileVersion = 1;
constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Doubles as base64 of their little-endian bytes (the hosts panelboot builds for are little-endian).
std::string encode_doubles(const std::vector<double>& v) {
  const auto* p = reinterpret_cast<const unsigned char*>(v.data());
  const std::size_t n = v.size() * sizeof(double);
  std::string out;
  out.reserve((n + 2) / 3 * 4);
  for (std::size_t i = 0; i < n; i += 3) {
    const unsigned b0 = p[i], b1 = i + 1 < n ? p[i + 1] : 0, b2 = i + 2 < n ? p[i + 2] : 0;
    out += kBase64[b0 >> 2];
    out += kBase64[((b0 & 3) << 4) | (b1 >> 4)];
    out += i + 1 < n ? kBase64[((b1 & 15) << 2) | (b2 >> 6)] : '=';
    out += i + 2 < n ? kBase64[b2 & 63] : '=';
  }
  return out;
}

std::vector<double> decode_doubles(const std::string& s, const std::string& where) {
  static const auto value = [] {
    std::array<int, 256> v{};
    v.fill(-1);
    for (int i = 0; i < 64; ++i) v[static_cast<unsigned char>(kBase64[i])] = i;
    return v;
  }();
  if (s.size() % 4) throw InvalidInput(where + ": its values are not base64 (length " + std::to_string(s.size()) + ")");
  const std::size_t pad = s.empty() ? 0 : (s.back() == '=') + (s.size() > 1 && s[s.size() - 2] == '=');
  const std::size_t n_bytes = s.size() / 4 * 3 - pad;
  if (n_bytes % sizeof(double)) throw InvalidInput(where + ": its values are not whole doubles");
  std::vector<double> v(n_bytes / sizeof(double));
  auto* out = reinterpret_cast<unsigned char*>(v.data());
  std::size_t o = 0;
  for (std::size_t i = 0; i < s.size(); i += 4) {
    int q[4];
    for (int k = 0; k < 4; ++k) {
      const bool padding = s[i + k] == '=' && i + 4 == s.size() && k >= 4 - static_cast<int>(pad);
      q[k] = padding ? 0 : value[static_cast<unsigned char>(s[i + k])];
      if (q[k] < 0) throw InvalidInput(where + ": its values are not base64");
    }
    const unsigned char b[3] = {static_cast<unsigned char>((q[0] << 2) | (q[1] >> 4)),
                                static_cast<unsigned char>(((q[1] & 15) << 4) | (q[2] >> 2)),
                                static_cast<unsigned char>(((q[2] & 3) << 6) | q[3])};
    for (int k = 0; k < 3 && o < n_bytes; ++k) out[o++] = b[k];
  }
  return v;
}

nlohmann::json task_json(const TaskRecord& r) {
  nlohmann::json t;
  t["key"] = r.spec.key;
  t["n_rep"] = r.spec.n_rep;
  t["align"] = r.spec.align;
  t["n_counts"] = r.spec.n_counts;
  t["width"] = r.spec.width;
  nlohmann::json segs = nlohmann::json::array();
  for (const Segment& s : r.segments) {
    nlohmann::json j;
    j["begin"] = s.range.begin;
    j["end"] = s.range.end;
    j["counts"] = s.counts;
    j["values"] = encode_doubles(s.values);
    segs.push_back(std::move(j));  // moved: a part's values may be hundreds of MB
  }
  t["segments"] = std::move(segs);
  return t;
}

template <class T>
T field(const nlohmann::json& j, const char* name, const std::string& where) {
  if (!j.is_object() || !j.contains(name)) throw InvalidInput(where + " has no '" + name + "'");
  try {
    return j.at(name).get<T>();
  } catch (const nlohmann::json::exception&) {
    throw InvalidInput(where + ": '" + name + "' has the wrong type");
  }
}

// A whole number >= 0 (JSON integers only: a float or a negative number is refused, not converted).
std::uint64_t whole(const nlohmann::json& j, const char* name, const std::string& where) {
  if (!j.is_object() || !j.contains(name)) throw InvalidInput(where + " has no '" + name + "'");
  if (!j.at(name).is_number_unsigned()) throw InvalidInput(where + ": '" + name + "' is not a whole number >= 0");
  return j.at(name).get<std::uint64_t>();
}

// A range's counts: whole numbers from 0 to twice its replications (an enumerated sign vector
// counts for two).
std::vector<std::int64_t> range_counts(const nlohmann::json& s, RepRange r, const std::string& where) {
  if (!s.is_object() || !s.contains("counts") || !s.at("counts").is_array())
    throw InvalidInput(where + ": a range has no list of 'counts'");
  std::vector<std::int64_t> counts;
  for (const nlohmann::json& c : s.at("counts")) {
    if (!c.is_number_unsigned() || c.get<std::uint64_t>() > 2 * r.size())
      throw InvalidInput(where + ": range " + std::to_string(r.begin) + ".." + std::to_string(r.end) +
                         " holds a count that is not a whole number from 0 to twice its replications");
    counts.push_back(static_cast<std::int64_t>(c.get<std::uint64_t>()));
  }
  return counts;
}

TaskRecord parse_task(const nlohmann::json& t, const std::string& path) {
  const std::string where = "run file '" + printable(path) + "'";
  TaskRecord r;
  r.spec.key = field<std::string>(t, "key", where);
  const std::string tw = where + ", task '" + printable(r.spec.key) + "'";
  r.spec.n_rep = whole(t, "n_rep", tw);
  r.spec.align = whole(t, "align", tw);
  r.spec.n_counts = static_cast<std::size_t>(whole(t, "n_counts", tw));
  r.spec.width = static_cast<std::size_t>(whole(t, "width", tw));
  if (r.spec.align < 1 || r.spec.n_counts > 1000000 || r.spec.width > 64)
    throw InvalidInput(tw + ": its shape (align, n_counts, width) is not one panelboot writes");
  if (!t.contains("segments") || !t.at("segments").is_array()) throw InvalidInput(tw + ": 'segments' is not a list");
  const nlohmann::json& segs = t.at("segments");
  for (const nlohmann::json& s : segs) {
    Segment seg;
    seg.range.begin = whole(s, "begin", tw);
    seg.range.end = whole(s, "end", tw);
    if (seg.range.begin > seg.range.end || seg.range.end > r.spec.n_rep)
      throw InvalidInput(tw + ": range " + std::to_string(seg.range.begin) + ".." + std::to_string(seg.range.end) +
                         " lies outside its " + std::to_string(r.spec.n_rep) + " replications");
    seg.counts = range_counts(s, seg.range, tw);
    if (!s.contains("values") || !s.at("values").is_string()) throw InvalidInput(tw + ": a range has no 'values' text");
    seg.values = decode_doubles(s.at("values").get_ref<const std::string&>(), tw);
    if (seg.range.size() == 0 && seg.range.begin <= seg.range.end) {
      r.segments.push_back(std::move(seg));  // an empty share: kept, it names the task
      continue;
    }
    r.add(std::move(seg), where);
  }
  check_record_shape(r, where);
  return r;
}

}  // namespace

std::uint64_t fnv1a(const void* data, std::size_t n, std::uint64_t h) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

std::string hex64(std::uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::string run_file_text(const RunFile& f) {
  nlohmann::json j;
  j["panelboot_run_file"] = kRunFileVersion;
  j["kind"] = f.kind;
  j["partial"] = f.kind == "partial";
  j["note"] = f.kind == "partial"
                  ? "one shard's replications: combine every shard with 'panelboot merge PARTS...'"
                  : "a checkpoint: run the same command with --resume to continue";
  j["run"] = nlohmann::json::parse(f.header_json);
  nlohmann::json tasks = nlohmann::json::array();
  for (const TaskRecord& r : f.tasks) tasks.push_back(task_json(r));
  j["tasks"] = std::move(tasks);
  return j.dump(1) + "\n";
}

RunFile parse_run_file(const std::string& text, const std::string& path) {
  const std::string where = "'" + printable(path) + "'";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    throw InvalidInput(where + " is not a panelboot partial result or checkpoint (not JSON)");
  }
  if (!j.is_object() || !j.contains("panelboot_run_file"))
    throw InvalidInput(where + " is not a panelboot partial result or checkpoint (no 'panelboot_run_file' field)");
  if (j["panelboot_run_file"] != kRunFileVersion)
    throw InvalidInput(where + " was written by another version of panelboot's run files (version " +
                       j["panelboot_run_file"].dump() + ", this one reads " + std::to_string(kRunFileVersion) + ")");
  RunFile f;
  f.kind = field<std::string>(j, "kind", where);
  if (f.kind != "partial" && f.kind != "checkpoint") throw InvalidInput(where + ": unknown kind '" + printable(f.kind) + "'");
  if (!j.contains("run") || !j.at("run").is_object()) throw InvalidInput(where + " has no 'run' object");
  f.header_json = field<nlohmann::json>(j, "run", where).dump();
  if (!j.contains("tasks") || !j.at("tasks").is_array()) throw InvalidInput(where + ": 'tasks' is not a list");
  const nlohmann::json& tasks = j.at("tasks");
  for (const nlohmann::json& t : tasks) f.tasks.push_back(parse_task(t, path));
  return f;
}

}  // namespace panelboot
