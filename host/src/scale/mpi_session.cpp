// An MPI job's session (panelboot/mpi.hpp): how the process was launched, the inbox, the run's
// identity check at its start and the job's end.
#include <chrono>
#include <cstdlib>
#include <ostream>
#include <thread>

#include "panelboot/error.hpp"
#include "panelboot/mpi.hpp"
#include "scale/wire.hpp"

namespace panelboot::mpi {

namespace {

Session* g_session = nullptr;

long env_long(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  char* end = nullptr;
  const long x = std::strtol(v, &end, 10);
  return *end ? fallback : x;
}

bool env_set(const char* name) { return std::getenv(name) != nullptr; }

}  // namespace

Launch launch_of() {
  Launch l;
  if (env_set("OMPI_COMM_WORLD_SIZE")) {
    l = {true, false, env_long("OMPI_COMM_WORLD_SIZE", 0), env_long("OMPI_COMM_WORLD_RANK", 0), "OMPI_COMM_WORLD_SIZE"};
  } else if (env_set("PMIX_RANK")) {
    l = {true, false, env_long("SLURM_STEP_NUM_TASKS", 0), env_long("PMIX_RANK", 0), "PMIX_RANK"};
  } else if (env_set("SLURM_STEP_ID") && env_long("SLURM_STEP_NUM_TASKS", 1) > 1) {
    // srun of several tasks with no PMI that OpenMPI joins (Debian's MpiDefault=none)
    l = {true, true, env_long("SLURM_STEP_NUM_TASKS", 0), env_long("SLURM_PROCID", 0), "SLURM_STEP_ID"};
  }
  return l;
}

Session* session() { return g_session; }

namespace detail {
void set_session(Session* s) { g_session = s; }
}  // namespace detail

Session::Session(std::unique_ptr<Communicator> comm)
    : comm_(std::move(comm)), rank_(comm_->rank()), size_(comm_->size()), ended_(static_cast<std::size_t>(size_), false) {}

Session::~Session() = default;

void Session::send(int to, Tag tag, const std::string& body) { comm_->send(to, static_cast<int>(tag), body); }

std::optional<Message> Session::next(const std::function<bool(const Message&)>& wanted) {
  for (auto it = inbox_.begin(); it != inbox_.end(); ++it)
    if (wanted(*it)) {
      Message m = std::move(*it);
      inbox_.erase(it);
      return m;
    }
  Message m;
  int tag = 0;
  while (comm_->try_receive(m.from, tag, m.body)) {
    m.tag = static_cast<Tag>(tag);
    if (wanted(m)) return m;
    inbox_.push_back(std::move(m));
    m = Message{};
  }
  return std::nullopt;
}

Message Session::wait(const std::function<bool(const Message&)>& wanted) {
  // a reply usually comes within a range's time: poll every 50 us at first, then every 1 ms
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    if (std::optional<Message> m = next(wanted)) return std::move(*m);
    const bool long_wait = std::chrono::steady_clock::now() - t0 > std::chrono::milliseconds(20);
    std::this_thread::sleep_for(std::chrono::microseconds(long_wait ? 1000 : 50));
  }
}

std::string Session::worker_error_line(int rank, const std::string& text) {
  std::string line = text;
  while (!line.empty() && line.back() == '\n') line.pop_back();
  if (const auto nl = line.find_last_of("\n\r"); nl != std::string::npos) line = line.substr(nl + 1);
  const std::string prefix = "panelboot: ";
  if (line.rfind(prefix, 0) == 0) line = line.substr(prefix.size());
  if (line.empty()) line = "error: it ended with no message";
  return "panelboot: rank " + std::to_string(rank) + ": " + line;
}

EndReport end_report(const Message& m) {
  wire::Reader r(m.body);
  EndReport e;
  e.status = r.i64();
  e.text = r.str();
  return e;
}

void Session::agree_on_run(const std::string& header,
                           const std::function<std::string(const std::string&, const std::string&)>& difference) {
  if (!root()) {
    send(0, Tag::kHello, header);
    const Message m = wait([](const Message& x) { return x.from == 0; });
    if (m.tag != Tag::kReady) throw StoppedByRoot();
    return;
  }
  std::string refusal;
  std::optional<RankFailed> failed;
  for (int w = 1; w < size_; ++w) {
    const Message m = wait([w](const Message& x) { return x.from == w && (x.tag == Tag::kHello || x.tag == Tag::kEnd); });
    if (m.tag == Tag::kEnd) {  // the worker failed before its run began (its data, its options)
      note_ended(w);
      const EndReport e = end_report(m);
      if (!failed) failed.emplace(static_cast<int>(e.status ? e.status : 2), worker_error_line(w, e.text));
      continue;
    }
    std::string diff;
    try {
      diff = difference(header, m.body);
    } catch (const std::exception& e) {  // a header that cannot be compared is another job's too
      diff = std::string("its run header (") + e.what() + ")";
    }
    if (!diff.empty() && refusal.empty())
      refusal = "rank " + std::to_string(w) + " runs another job than rank 0: it differs in " + diff +
                "; every rank must read the same data with the same options";
  }
  const bool go = refusal.empty() && !failed;
  for (int w = 1; w < size_; ++w)
    if (!ended_[static_cast<std::size_t>(w)]) send(w, go ? Tag::kReady : Tag::kStop, "");
  if (failed) throw *failed;
  if (!refusal.empty()) throw InvalidInput(refusal);
}

int Session::end(int status, const std::string& error_text, std::ostream& err) {
  if (!root()) {
    send(0, Tag::kEnd, wire::Writer().i64(status).str(status ? error_text : "").take());
    wait([](const Message& x) { return x.from == 0 && x.tag == Tag::kBye; });
    return status;
  }
  // whatever a worker waits for, a stop ends its wait (one waiting for its goodbye keeps it unread)
  for (int w = 1; w < size_; ++w)
    if (!ended_[static_cast<std::size_t>(w)]) send(w, Tag::kStop, "");
  for (int w = 1; w < size_; ++w) {
    while (!ended_[static_cast<std::size_t>(w)]) {
      const Message m = wait([w](const Message& x) { return x.from == w; });
      if (m.tag != Tag::kEnd) {  // still in its run (rank 0 stopped early): stop it
        send(w, Tag::kStop, "");
        continue;
      }
      note_ended(w);
      const EndReport e = end_report(m);
      if (e.status != 0 && status == 0) {
        err << worker_error_line(w, e.text) << "\n";
        status = static_cast<int>(e.status);
      }
    }
  }
  for (int w = 1; w < size_; ++w) send(w, Tag::kBye, "");
  return status;
}

}  // namespace panelboot::mpi
