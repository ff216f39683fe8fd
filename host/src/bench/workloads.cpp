// `panelboot bench`'s problems and their work models (workloads.hpp). Each problem runs through
// the engine's own entry point (wild_bootstrap, estimate_threshold, Backend::batched_ols,
// power_study, fit), on data made in memory before the clock starts: the embedded study for the
// study's shapes, else seeded synthetic panels, the same on every machine.
#include "workloads.hpp"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <string>

#include "panelboot/data_frame.hpp"
#include "panelboot/design.hpp"
#include "panelboot/estimate.hpp"
#include "panelboot/formula.hpp"
#include "panelboot/power.hpp"
#include "panelboot/threshold.hpp"
#include "panelboot/wild.hpp"

namespace panelboot::bench {
namespace {

// ---- seeded data: splitmix64 and Box-Muller, the same numbers on every platform ----
class Normals {
 public:
  explicit Normals(std::uint64_t seed) : state_(seed) {}
  double next() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    const double u1 = (static_cast<double>(bits() >> 11) + 0.5) * 0x1.0p-53;
    const double u2 = static_cast<double>(bits() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1)), a = 2.0 * M_PI * u2;
    spare_ = r * std::sin(a);
    has_spare_ = true;
    return r * std::cos(a);
  }

 private:
  std::uint64_t bits() {
    std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::uint64_t state_;
  double spare_ = 0;
  bool has_spare_ = false;
};

Column numeric_column(const std::string& name, std::vector<double> values) {
  Column c;
  c.name = name;
  c.num = std::move(values);
  return c;
}

// A balanced panel of `units` x `periods` in memory: unit, period, x1..xk (correlated with the
// unit effect), y = 0.1 sum x + unit effect + 0.1 period + noise; with `iv`, instruments z1, z2
// and an endogenous d (y gains 0.2 d).
DataFrame synthetic_panel_frame(std::int64_t units, std::int64_t periods, int k, bool iv, std::uint64_t seed) {
  const std::size_t n = static_cast<std::size_t>(units * periods);
  Normals rng(seed);
  std::vector<double> unit(n), period(n), y(n);
  std::vector<std::vector<double>> x(static_cast<std::size_t>(k), std::vector<double>(n));
  std::vector<double> z1, z2, d;
  if (iv) z1.resize(n), z2.resize(n), d.resize(n);
  std::size_t r = 0;
  for (std::int64_t i = 0; i < units; ++i) {
    const double alpha = rng.next();
    for (std::int64_t t = 0; t < periods; ++t, ++r) {
      unit[r] = static_cast<double>(i);
      period[r] = static_cast<double>(t);
      double yr = alpha + 0.1 * static_cast<double>(t) + rng.next();
      for (int j = 0; j < k; ++j) {
        x[static_cast<std::size_t>(j)][r] = rng.next() + 0.5 * alpha;
        yr += 0.1 * x[static_cast<std::size_t>(j)][r];
      }
      if (iv) {
        const double u = rng.next();
        z1[r] = rng.next();
        z2[r] = rng.next();
        d[r] = 0.5 * z1[r] + 0.3 * z2[r] + u;
        yr += 0.2 * d[r] + 0.5 * u;
      }
      y[r] = yr;
    }
  }
  DataFrame df;
  df.source = "bench: synthetic panel";
  df.row_unit = "row";
  df.rows_in_memory = n;
  df.columns.push_back(numeric_column("unit", std::move(unit)));
  df.columns.push_back(numeric_column("period", std::move(period)));
  df.columns.push_back(numeric_column("y", std::move(y)));
  for (int j = 0; j < k; ++j)
    df.columns.push_back(numeric_column("x" + std::to_string(j + 1), std::move(x[static_cast<std::size_t>(j)])));
  if (iv) {
    df.columns.push_back(numeric_column("z1", std::move(z1)));
    df.columns.push_back(numeric_column("z2", std::move(z2)));
    df.columns.push_back(numeric_column("d", std::move(d)));
  }
  return df;
}

std::string regressors(int k) {
  std::string s;
  for (int j = 1; j <= k; ++j) s += (j > 1 ? " + x" : "x") + std::to_string(j);
  return s;
}

// "10^6", or the number itself when it is no power of ten
std::string power_of_ten(double v) {
  const double e = std::round(std::log10(v));
  if (v >= 1000 && std::fabs(std::pow(10.0, e) - v) < 0.5) return "10^" + std::to_string(static_cast<int>(e));
  return std::to_string(static_cast<long long>(v));
}

// The data of a workload, made by prepare() and freed by release().
template <class T>
struct Held {
  std::shared_ptr<std::unique_ptr<T>> slot = std::make_shared<std::unique_ptr<T>>();
  T& operator*() const { return **slot; }
  void make(T value) const { *slot = std::make_unique<T>(std::move(value)); }
  void clear() const { slot->reset(); }
};

Workload with_frame(Workload w, std::function<DataFrame()> make_frame, const Held<DataFrame>& frame) {
  w.prepare = [frame, make_frame](const Backend&) { frame.make(make_frame()); };
  w.release = [frame] { frame.clear(); };
  return w;
}

// A workload's description: what it is, its size on the ladder, and how its work is counted.
Workload described(const std::string& problem, const std::string& ladder, double value, const std::string& size,
                   double replications, const std::string& unit, const std::string& model, double memory_bytes) {
  Workload w;
  w.problem = problem;
  w.ladder = ladder;
  w.ladder_value = value;
  w.size = size;
  w.replications = replications;
  w.replication_unit = unit;
  w.model = model;
  w.memory_bytes = memory_bytes;
  return w;
}

// The quick ladder, and with the full one its next size too.
template <class T>
std::vector<T> ladder_of(std::vector<T> quick_sizes, T full_only, bool quick) {
  if (!quick) quick_sizes.push_back(full_only);
  return quick_sizes;
}

// ---- the wild bootstrap: drawn replications (the study's shape) and enumeration ----
const char* const kStudyFormula = "newqua ~ rgzn + urban + ind + fdi + open + fin | province + year";

RunOutcome run_wild(const DataFrame& df, const std::string& formula, const std::string& cluster,
                    const std::string& test, const WildOptions& wo, const Backend& be) {
  SampleOptions so;
  so.cluster = {cluster};
  Design d = build_design(df, parse_formula(formula), so);
  FitOptions fo;
  fo.vcov = VcovType::kCluster;
  WildOptions o = wo;
  o.tests = {test};
  o.ci = false;
  const WildResult r = wild_bootstrap(d, fo, o, be);
  const WildTest& t = r.tests.at(0);
  RunOutcome out;
  out.signature = {static_cast<double>(t.n_exceed), static_cast<double>(t.n_finite), t.p_value};
  const double reps = t.enumerated ? std::ldexp(1.0, r.n_bootclusters - 1) : static_cast<double>(t.n_boot);
  out.flops = 2.0 * t.work_per_replication * reps;
  return out;
}

std::vector<Workload> wild_drawn(bool quick, std::uint64_t max_memory) {
  std::vector<Workload> out;
  const Held<DataFrame> frame;
  for (double B : ladder_of({1e5, 1e6, 1e7}, 1e8, quick)) {
    Workload w = described("wild", "B", B, "study, G=30, k=6, B=" + power_of_ten(B), B, "replications",
                           "2 x the multiply-adds of a replication's products and denominator "
                           "(wild_work_per_replication); the cluster-level arrays stay in cache",
                           64e6);
    w = with_frame(w, [] { return embedded_dataset(); }, frame);
    w.run = [frame, B, max_memory](const Backend& be) {
      WildOptions wo;
      wo.n_boot = static_cast<std::int64_t>(B);
      wo.enumerate = Enumerate::kNever;
      wo.max_memory = max_memory;
      return run_wild(*frame, kStudyFormula, "province", "rgzn = 0", wo, be);
    };
    out.push_back(w);
  }
  return out;
}

std::vector<Workload> wild_enumerated(bool quick, std::uint64_t max_memory) {
  std::vector<Workload> out;
  for (int G : ladder_of({12, 18, 24, 28}, 32, quick)) {
    const Held<DataFrame> frame;
    const double pairs = std::ldexp(1.0, G - 1);
    Workload w = described("wild-enum", "G", G,
                           "G=" + std::to_string(G) + ", T=12, 2^" + std::to_string(G) + " sign vectors" +
                               (G > 22 ? " (Gray walk)" : " (stored)"),
                           pairs, "sign-vector pairs",
                           G > 22 ? "2 x (G + 3) multiply-adds per Gray-code step" : "2 x wild_work_per_replication per pair",
                           64e6 + (G > 22 ? 0.0 : 8.0 * pairs * 4));
    w = with_frame(w, [G] { return synthetic_panel_frame(G, 12, 2, false, 1000 + static_cast<std::uint64_t>(G)); }, frame);
    w.run = [frame, max_memory](const Backend& be) {
      WildOptions wo;
      wo.enumerate = Enumerate::kAlways;
      wo.max_memory = max_memory;
      return run_wild(*frame, "y ~ x1 + x2 | unit + period", "unit", "x1 = 0.1", wo, be);
    };
    out.push_back(w);
  }
  return out;
}

// ---- the threshold bootstrap: Hansen's shape (565 firms x 15 years), 393 points and every value ----
std::vector<Workload> threshold_boot(bool quick, std::uint64_t max_memory) {
  std::vector<Workload> out;
  const Held<DataFrame> frame;
  struct Size {
    int grid;  // 0: every value
    std::int64_t B;
  };
  // Hansen's qn = 400 (393 points on his data), and every value
  // the same B at every grid size, so that the time against the grid is the grid's
  const std::vector<Size> ladder = quick ? std::vector<Size>{{400, 300}, {0, 300}} : std::vector<Size>{{400, 2000}, {0, 2000}};
  for (const Size& s : ladder) {
    // the grid's points (the ladder's value) are known after the run
    Workload w = described("threshold", "grid", s.grid,
                           "565 x 15, 3 tests, grid " + (s.grid ? "qn=" + std::to_string(s.grid) : std::string("all")) +
                               ", B=" + std::to_string(s.B),
                           3.0 * static_cast<double>(s.B), "replications (3 tests)",
                           "2 x threshold_work_per_replication: (n_q + 2) per observation and p per grid point and stage",
                           256e6);
    w = with_frame(w, [] {
      DataFrame df = synthetic_panel_frame(565, 15, 5, false, 1999);
      // q: the threshold variable, a unit-level draw plus noise (distinct values)
      Normals rng(2000);
      std::vector<double> q(df.n_rows());
      for (double& v : q) v = rng.next();
      df.columns.push_back(numeric_column("q", std::move(q)));
      return df;
    }, frame);
    w.run = [frame, s, max_memory](const Backend& be) {
      ThresholdOptions o;
      o.max_memory = max_memory;
      o.formula = "y ~ x2 + x3 + x4 + x5 | unit";
      o.regime = {"x1"};
      o.threshold_var = "q";
      o.sample.panel_id = "unit";
      o.sample.panel_time = "period";
      o.n_thresholds = 3;
      o.grid = s.grid;
      o.n_boot = s.B;
      o.keep_regimes = false;
      const ThresholdResult r = estimate_threshold(*frame, o, be);
      RunOutcome ro;
      for (const ThresholdTest& t : r.tests) {
        ro.signature.push_back(t.F);
        ro.signature.push_back(t.p_value);
        ro.signature.insert(ro.signature.end(), t.crit.begin(), t.crit.end());
        ro.flops += 2.0 * t.work_per_replication * static_cast<double>(t.n_boot);
      }
      ro.ladder_value = static_cast<double>(r.n_grid);
      return ro;
    };
    out.push_back(w);
  }
  return out;
}

// ---- batched OLS: many 200 x 10 regressions ----
std::vector<Workload> ols_batch(bool quick, std::uint64_t /*max_memory: checked by the bench*/) {
  std::vector<Workload> out;
  const std::int64_t n = 200, k = 10;
  for (std::int64_t nb : ladder_of<std::int64_t>({2000, 20000}, 60000, quick)) {
    struct Data {
      std::unique_ptr<HostArray> X, y;  // pinned when a GPU runs: its copies overlap its kernels
    };
    const Held<Data> data;
    Workload w = described("ols-batch", "batch", static_cast<double>(nb), std::to_string(nb) + " x (200 x 10)",
                           static_cast<double>(nb), "regressions",
                           "FLOPs: the Gram of [X y] (n (k+1)(k+2)) and the residuals (2 n (k+1)); bytes: X and y "
                           "read, beta and the SSR written",
                           8.0 * static_cast<double>(nb) * (n * k + n) * 1.2);
    w.tolerance = 1e-9;  // a device's summation order may differ in the last bits
    w.prepare = [data, nb](const Backend& host) {
      Data d;
      Normals rng(3);
      d.X = host.host_array(static_cast<std::size_t>(n * k * nb));
      d.y = host.host_array(static_cast<std::size_t>(n * nb));
      for (HostArray* a : {d.X.get(), d.y.get()})
        for (std::size_t i = 0; i < a->size(); ++i) a->data()[i] = rng.next();
      data.make(std::move(d));
    };
    w.release = [data] { data.clear(); };
    w.run = [data, nb](const Backend& be) {
      const Data& d = *data;
      const OlsBatch bt{d.X->data(), d.y->data(), n, k, nb, n * k, n};
      const OlsBatchResult r = be.batched_ols(bt);
      RunOutcome ro;
      double sum_beta = 0, sum_ssr = 0, bad = 0;
      for (double v : r.beta) sum_beta += v;
      for (double v : r.ssr) sum_ssr += v;
      for (int s : r.status) bad += s != 0;
      ro.signature = {sum_beta, sum_ssr, bad};
      const double items = static_cast<double>(nb);
      ro.flops = items * (static_cast<double>(n) * (k + 1) * (k + 2) + 2.0 * n * (k + 1));
      ro.bytes = items * 8.0 * static_cast<double>(n * k + n + k + 1);
      ro.host_bytes = items * 8.0 * static_cast<double>(n * k + n);
      if (std::isfinite(r.device_s)) ro.device_s = r.device_s;
      return ro;
    };
    out.push_back(w);
  }
  return out;
}

// ---- power: the study's regional split, the CRVE test (the batched demeaned-OLS solves) ----
std::vector<Workload> power_split(bool quick, std::uint64_t max_memory) {
  std::vector<Workload> out;
  const Held<DataFrame> frame;
  for (double R : ladder_of({1e3, 1e4, 1e5}, 1e6, quick)) {
    // effects 0 and the estimate, 3 groups
    Workload w = described("power", "R", R,
                           "study split by region (3 groups, 8-11 clusters), crve, R=" + power_of_ten(R), 2 * 3 * R,
                           "simulated regressions",
                           "2 x (2 n k + 3 n) multiply-adds per simulated regression (the fixed-design solve, its "
                           "residuals and scores; the error draws and their demeaning not counted)",
                           256e6);
    w = with_frame(w, [] { return embedded_dataset(); }, frame);
    w.run = [frame, R, max_memory](const Backend& be) {
      PowerOptions po;
      po.max_memory = max_memory;
      po.target = "rgzn";
      po.effects = parse_effects("0,x1");
      po.splits = {"region"};
      po.tests = {PowerTest::kCrve};
      po.n_rep = static_cast<std::int64_t>(R);
      SampleOptions so;
      so.cluster = {"province"};
      FitOptions fo;
      fo.vcov = VcovType::kCluster;
      const PowerResult r = power_study(*frame, parse_formula(kStudyFormula), so, fo, po, be);
      RunOutcome ro;
      for (const PowerCell& c : r.cells) {
        ro.signature.push_back(static_cast<double>(c.rejections));
        ro.signature.push_back(c.estimate_mean);
      }
      for (const PowerGroup& g : r.groups) {
        const double n = static_cast<double>(g.n_obs), k = static_cast<double>(g.coefficients.size());
        ro.flops += 2.0 * (2 * n * k + 3 * n) * 2 * R;
      }
      return ro;
    };
    out.push_back(w);
  }
  return out;
}

// ---- the IV wild bootstrap (WRE), 30 clusters ----
std::vector<Workload> iv_wre(bool quick, std::uint64_t max_memory) {
  std::vector<Workload> out;
  const Held<DataFrame> frame;
  for (double B : ladder_of({1e3, 1e4, 1e5}, 1e6, quick)) {
    Workload w = described("iv-wre", "B", B, "G=30, T=12, 2 instruments, B=" + power_of_ten(B), B, "replications",
                           "2 x wre_work_per_replication: the products and the moments of a replication", 64e6);
    w = with_frame(w, [] { return synthetic_panel_frame(30, 12, 1, true, 77); }, frame);
    w.run = [frame, B, max_memory](const Backend& be) {
      WildOptions wo;
      wo.n_boot = static_cast<std::int64_t>(B);
      wo.enumerate = Enumerate::kNever;
      wo.max_memory = max_memory;
      return run_wild(*frame, "y ~ x1 | unit + period | d ~ z1 + z2", "unit", "d = 0", wo, be);
    };
    out.push_back(w);
  }
  return out;
}

// ---- fit: 5 regressors, two-way FE, clustered, from columns in memory ----
std::vector<Workload> fit_rows(bool quick, std::uint64_t /*max_memory: checked by the bench*/) {
  std::vector<Workload> out;
  const int k = 5;
  for (double N : ladder_of({1e5, 1e6}, 1e7, quick)) {
    const Held<DataFrame> frame;
    Workload w = described("fit", "N", N, "N=" + power_of_ten(N) + ", k=5, unit + period (20 periods), clustered", N,
                           "rows",
                           "bytes: the plain pipeline's 6 passes over the k + 1 columns (a copy of the sample: read "
                           "and write; the transform: read and write; the Gram; residuals and scores) plus 2 reads of "
                           "the 2 group codes (the fit's fused passes move less: bench/RESULTS.md, issue 22 item 1)",
                           N * 8.0 * (k + 3) * 2.5);
    w.gpu_capable = false;
    w = with_frame(w, [N] { return synthetic_panel_frame(static_cast<std::int64_t>(N) / 20, 20, k, false, 11); }, frame);
    w.run = [frame, N](const Backend&) {
      SampleOptions so;
      so.cluster = {"unit"};
      so.defer_columns = true;  // as the fit command: the frame outlives the fit
      Design d = build_design(*frame, parse_formula("y ~ " + regressors(k) + " | unit + period"), so);
      FitOptions fo;
      fo.vcov = VcovType::kCluster;
      const FitResult r = fit(d, fo);
      RunOutcome ro;
      for (const Coefficient& c : r.coefficients) {
        ro.signature.push_back(c.estimate);
        ro.signature.push_back(c.std_error);
      }
      ro.bytes = N * (6.0 * 8.0 * (k + 1) + 2.0 * 2.0 * 4.0);
      ro.flops = N * 2.0 * (k + 1) * (k + 2) / 2;  // the Gram's upper triangle
      return ro;
    };
    out.push_back(w);
  }
  return out;
}

// ---- reading CSV: the fit problem's columns as text, 10 significant digits ----
// The frame as CSV text: the header, then each row's values with std::to_chars (integers as
// integers, the rest in the shortest of %.10g's forms), as bench/peers writes the fit data. Not
// study.hpp's data_frame_csv: its %.17g makes longer numbers than the files users read here.
std::string csv_text_of(const DataFrame& df) {
  std::string text;
  for (std::size_t j = 0; j < df.columns.size(); ++j) text += (j ? "," : "") + df.columns[j].name;
  text += '\n';
  const std::size_t n = df.n_rows();
  text.reserve(text.size() + n * df.columns.size() * 14);
  char buf[64];
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t j = 0; j < df.columns.size(); ++j) {
      const double v = df.columns[j].num[i];
      char* end = v == std::floor(v) && std::fabs(v) < 1e15
                      ? std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v)).ptr
                      : std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 10).ptr;
      if (j) text += ',';
      text.append(buf, end);
    }
    text += '\n';
  }
  return text;
}

std::vector<Workload> csv_reading(bool quick, std::uint64_t /*max_memory: checked by the bench*/) {
  std::vector<Workload> out;
  const int k = 5;
  for (double N : ladder_of({1e5, 1e6}, 1e7, quick)) {
    const Held<std::string> text;
    Workload w = described(
        "csv", "N", N, "N=" + power_of_ten(N) + ", 8 numeric columns of fit's panel, 10 digits", N,
        "rows",
        "bytes: the text read once and the columns (8 bytes a value) and line numbers written once",
        N * (90.0 + 8.0 * (k + 3) + 4.0) * 1.6);
    w.gpu_capable = false;
    w.prepare = [text, N](const Backend&) {
      text.make(
          csv_text_of(synthetic_panel_frame(static_cast<std::int64_t>(N) / 20, 20, k, false, 11)));
    };
    w.release = [text] { text.clear(); };
    w.run = [text](const Backend&) {
      const DataFrame df = read_csv_text(*text, "bench.csv");
      RunOutcome ro;
      const std::size_t n = df.n_rows();
      ro.signature = {static_cast<double>(n), df.columns[2].num[0], df.columns[2].num[n / 2],
                      df.columns.back().num[n - 1]};
      ro.bytes = static_cast<double>((*text).size()) +
                 static_cast<double>(n) * (8.0 * static_cast<double>(df.columns.size()) + 4.0);
      return ro;
    };
    out.push_back(w);
  }
  return out;
}

}  // namespace

std::vector<Workload> workloads_of(const std::string& problem, bool quick, std::uint64_t max_memory) {
  if (problem == "wild") return wild_drawn(quick, max_memory);
  if (problem == "wild-enum") return wild_enumerated(quick, max_memory);
  if (problem == "threshold") return threshold_boot(quick, max_memory);
  if (problem == "ols-batch") return ols_batch(quick, max_memory);
  if (problem == "power") return power_split(quick, max_memory);
  if (problem == "iv-wre") return iv_wre(quick, max_memory);
  if (problem == "fit") return fit_rows(quick, max_memory);
  if (problem == "csv") return csv_reading(quick, max_memory);
  return {};
}

}  // namespace panelboot::bench
