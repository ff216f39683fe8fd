// The wild cluster bootstrap: the host reduces the data to cluster-level pieces (WildEngine)
// and a Backend evaluates the replications. See wild.hpp for the algebra.
#include "panelboot/wild.hpp"

#include <map>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <cstring>
#include <functional>
#include <limits>
#include <unordered_map>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "estimate/detail.hpp"
#include "inference/wild_engine.hpp"
#include "panelboot/distributions.hpp"
#include "panelboot/error.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/names.hpp"
#include "panelboot/progress.hpp"
#include "panelboot/within.hpp"

namespace panelboot {

std::string weight_type_name(WeightType w) { return name_of(kWeightTypeNames, w); }
std::string pvalue_type_name(PValueType p) { return name_of(kPValueTypeNames, p); }

namespace wild_detail {

// A restriction whose cluster-robust variance is numerically zero (kZeroSeRel of its scale) has
// no t statistic, so neither the bootstrap nor the CI means anything: an error, never stars.
void refuse_zero_variance(const std::string& text, const Eigen::MatrixXd& R, const FitResult& fr,
                          const Eigen::MatrixXd& RVR) {
  const Eigen::VectorXd Rb = R * fr.beta;
  const Eigen::MatrixXd RAR = R * fr.bread * R.transpose();
  for (Eigen::Index j = 0; j < R.rows(); ++j) {
    const double se = RVR(j, j) > 0 ? std::sqrt(RVR(j, j)) : 0.0;
    const double se_iid = fr.sigma * std::sqrt(std::max(RAR(j, j), 0.0));
    if (!se_is_zero(se, Rb(j), se_iid)) continue;
    char buf[128];
    std::snprintf(buf, sizeof buf, " (%.3g, against %.6g and a homoskedastic SE of %.3g)", se, Rb(j), se_iid);
    const std::int32_t g = fr.min_clusters();
    const std::string kind = g ? "cluster-robust" : "heteroskedasticity-robust";
    throw InvalidInput("--test '" + text + "': the " + kind + " standard error of the restriction is numerically zero" +
                       buf + (g ? " with " + std::to_string(g) + " clusters" : std::string()) +
                       ", so its t statistic and the bootstrap are undefined; use more clusters or fewer fixed effects");
  }
}

// The memory of one test's replications, checked before they start: each thread's batch
// buffers (--chunk replications at a time) and, for the CI, the coefficients of every
// replication (n0, d0, and n1, d1, d2 under WCR), twice through a runner (its segment, then the
// replicates made from it).
void check_wild_memory(const WildProblem& pr, const WildRunOptions& o, const std::string& test,
                       std::uint64_t max_memory, bool through_runner) {
  const double chunk = static_cast<double>(std::min<std::uint64_t>(o.chunk ? o.chunk : default_wild_chunk(pr), o.n_rep));
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  const double batches = threads * chunk * wild_batch_bytes_per_replication(pr);
  const double coefs = o.keep_coefs ? static_cast<double>(o.n_rep) * 8.0 * (pr.n_part == 2 ? 5 : 2) : 0.0;
  const double kept = coefs * (through_runner ? 2 : 1) + static_cast<double>(o.trace_keep) * 8.0;
  std::string what = "the wild bootstrap of '" + test + "' (";
  if (o.keep_coefs) what += std::to_string(o.n_rep) + " replications kept for its confidence interval, ";
  if (o.trace_keep) what += std::to_string(o.trace_keep) + " statistics kept for --save-draws, ";
  what += "batches of " + std::to_string(static_cast<long long>(chunk)) + " on " + std::to_string(threads) +
          (threads == 1 ? " thread)" : " threads)");
  check_memory(batches + kept, max_memory, what,
               o.keep_coefs ? "lower --B, or add --no-ci: without the interval the counts take constant memory"
                            : "lower --chunk (0 chooses it) or --threads");
}

// Each CI boundary's bisection stops after this many halvings (2^-200 of the bracket is far
// below any tolerance in double precision).
constexpr int kMaxBisections = 200;

// Confidence set {r : p(r) > alpha} by a grid bracket and bisection on r.
void invert_set(const std::function<double(double)>& p_at, double rb, double se, double crit, double alpha,
                WildTest& out) {
  double half = std::max(4.0, 2.5 * crit) * se;
  const int n_grid = 24;
  std::vector<double> rs, ps;
  for (int expand = 0; expand < 6; ++expand) {
    rs.clear();
    ps.clear();
    for (int i = 0; i <= n_grid; ++i) {
      const double r = rb - half + 2 * half * i / n_grid;
      rs.push_back(r);
      ps.push_back(p_at(r));
    }
    if (ps.front() <= alpha && ps.back() <= alpha) break;
    half *= 3;
  }
  if (ps.front() > alpha || ps.back() > alpha) {
    // the last grid searched (half was widened once more after it)
    const double searched = 0.5 * (rs.back() - rs.front()) / se;
    out.ci_bounded = false;
    out.note = "confidence set unbounded within +-" + std::to_string(searched) +
               " standard errors (ci_low/ci_high are the searched grid's ends)";
  }
  const double tol = 1e-5 * se;
  out.ci_tol = tol;
  // boundaries between accepted (p > alpha) and rejected grid points, refined by bisection
  std::vector<std::pair<double, double>> pieces;
  bool in = ps[0] > alpha;
  double start = rs[0];
  for (int i = 1; i <= n_grid; ++i) {
    const bool now = ps[i] > alpha;
    if (now == in) continue;
    double lo = rs[i - 1], hi = rs[i];  // p(lo) on the `in` side
    // bisection to the tolerance, or until the interval cannot be halved in floating point
    for (int it = 0; it < kMaxBisections && hi - lo > tol; ++it) {
      const double mid = 0.5 * (lo + hi);
      if (mid <= lo || mid >= hi) break;
      ((p_at(mid) > alpha) == in ? lo : hi) = mid;
    }
    const double edge = 0.5 * (lo + hi);
    if (in) pieces.emplace_back(start, edge);
    else start = edge;
    in = now;
  }
  if (in) pieces.emplace_back(start, rs.back());
  out.ci_pieces = pieces;
  out.ci_available = !pieces.empty();
  if (!pieces.empty()) {
    out.ci_low = pieces.front().first;
    out.ci_high = pieces.back().second;
    if (pieces.size() > 1) out.note = "the confidence set is made of " + std::to_string(pieces.size()) + " disjoint pieces";
  } else {
    out.note = "the confidence set is empty at this level";
  }
}

// The stages of wild_bootstrap, in order.

// 1. The options no run can start with.
void check_options(const WildOptions& wo) {
  if (wo.tests.empty()) throw InvalidInput("wild needs at least one --test, e.g. --test 'x = 0'");
  if (wo.n_boot < 1) throw InvalidInput("--B must be a positive number of replications");
  if (wo.enumerate == Enumerate::kAlways && wo.weight != WeightType::kRademacher)
    throw InvalidInput("--enumerate always needs --weight-type rademacher (only sign vectors can be "
                       "enumerated); drop --enumerate or use Rademacher weights");
  if (!(wo.level > 0 && wo.level < 1)) throw InvalidInput("--level must be between 0 and 1");
}

// 2. The bootstrap clusters, chosen before the fit consumes the design.
Grouping bootstrap_clusters(const Design& d, const WildOptions& wo) {
  Grouping boot;
  if (d.clusters.empty()) {  // heteroskedastic wild bootstrap: every observation its own cluster
    boot.name = "(observation)";
    boot.n_levels = static_cast<std::int32_t>(d.n_obs);
    boot.code.resize(d.n_obs);
    for (std::size_t i = 0; i < d.n_obs; ++i) boot.code[i] = static_cast<std::int32_t>(i);
  } else if (wo.bootcluster == "intersection") {
    std::vector<const Grouping*> gs;
    for (const Grouping& g : d.clusters) gs.push_back(&g);
    boot = gs.size() == 1 ? *gs[0] : detail::intersect(gs);
    boot.name = "intersection";
  } else if (!wo.bootcluster.empty()) {
    if (d.extra.empty()) throw InvalidInput("--bootcluster " + wo.bootcluster + " is not in the design");
    boot = d.extra[0];
  } else {
    const Grouping* best = &d.clusters[0];
    for (const Grouping& g : d.clusters)
      if (g.n_levels < best->n_levels) best = &g;
    boot = *best;
  }
  if (boot.n_levels < 2)
    throw InvalidInput("the bootstrap clustering '" + boot.name +
                       "' has a single level in the sample; the wild bootstrap needs at least two");
  return boot;
}

// 3. The fit (consuming the design; the scaled residuals stay in d.y) and the result's header.
WildResult fit_for_wild(Design& d, const FitOptions& fo, const WildOptions& wo, const Grouping& boot,
                        const Backend& backend) {
  WildResult res;
  FitOptions fopts = fo;
  fopts.vcov = d.clusters.empty() ? VcovType::kHc1 : VcovType::kCluster;
  fopts.wald.clear();
  res.fit = fit(d, fopts);
  res.method = wo.impose_null ? "WCR" : "WCU";
  res.weight_type = weight_type_name(wo.weight);
  res.bootcluster = boot.name;
  res.n_bootclusters = boot.n_levels;
  res.seed = wo.seed;
  res.backend = backend.name();
  return res;
}

// 4. The variance terms: the fit's clusterings, or HC1 with each observation its own cluster
// (`obs`, which must outlive the terms).
std::vector<ClusterTerm> variance_terms(const Design& d, const FitOptions& fo, const FitResult& fr,
                                        const Grouping& boot, Grouping& obs) {
  const std::size_t n = d.n_obs;
  // the fit's small-sample convention (--small), so the bootstrap t has the observed t's scale
  if (!d.clusters.empty())
    return clustering_terms(d.clusters, fo.multiway_adj, static_cast<double>(n), fr.dof_k, fo.small);
  obs = boot;
  ClusterTerm t;
  t.grouping = &obs;
  t.weight = fo.small ? static_cast<double>(n) / (static_cast<double>(n) - fr.dof_k) : 1.0;
  return {t};
}

// 5. The tests: the joint one first (--joint), then one per restriction row.
std::vector<TestSpec> parse_tests(const WildOptions& wo, const FitResult& fr) {
  std::vector<std::string> names;
  for (const auto& c : fr.coefficients) names.push_back(c.name);
  const Eigen::Index k = static_cast<Eigen::Index>(fr.beta.size());
  std::vector<LinearRestriction> all_rows;
  for (const std::string& t : wo.tests) {
    std::vector<LinearRestriction> rows;
    try {
      rows = parse_restrictions(t, names);
    } catch (const InvalidInput& e) {
      for (const std::string& dname : fr.dropped)
        if (t.find(dname.substr(0, dname.find(' '))) != std::string::npos)
          throw InvalidInput("--test '" + t + "': coefficient " + dname + " was dropped, so it cannot be tested");
      throw;
    }
    for (auto& rrow : rows) all_rows.push_back(rrow);
  }
  std::vector<TestSpec> specs;
  if (wo.joint) {
    TestSpec s;
    s.R.resize(static_cast<Eigen::Index>(all_rows.size()), k);
    s.r.resize(static_cast<Eigen::Index>(all_rows.size()));
    for (std::size_t i = 0; i < all_rows.size(); ++i) {
      s.R.row(static_cast<Eigen::Index>(i)) = all_rows[i].R.transpose();
      s.r(static_cast<Eigen::Index>(i)) = all_rows[i].r;
      s.text += (i ? ", " : "") + all_rows[i].text;
    }
    specs.push_back(s);
  }
  for (const auto& row : all_rows) specs.push_back({row.text, row.R.transpose(), Eigen::VectorXd::Constant(1, row.r)});
  return specs;
}

// 6. Whether the replications enumerate the sign vectors (and the note on a small B).
bool plan_enumeration(const WildOptions& wo, std::int32_t G, WildResult& res) {
  const bool enumerate = enumerates(wo.enumerate, wo.weight, G, wo.n_boot);
  if (enumerate && G > 40)
    throw InvalidInput("--enumerate always with " + std::to_string(G) +
                       " bootstrap clusters would take 2^" + std::to_string(G) +
                       " sign vectors; use random draws (--enumerate never)");
  if (wo.enumerate == Enumerate::kNever || !enumerate) {
    if (wo.n_boot < 99) res.notes.push_back("B = " + std::to_string(wo.n_boot) + " is below 99: the p-value is coarse");
  }
  return enumerate;
}

// What every test of one call shares.
struct WildContext {
  const FitResult& fr;
  const WildOptions& wo;
  const Backend& backend;
  Eigen::Map<const Eigen::MatrixXd> X;
  const std::vector<double>& uhat;  // the unrestricted residuals (scaled)
  std::int32_t G;
  bool enumerate;
  std::size_t trace_keep;
};

// 7a. The observed statistic (t, or the joint F) and its CRVE p-value; returns R b - r.
Eigen::VectorXd observed_statistic(const TestSpec& sp, const FitResult& fr, WildTest& out, double& se) {
  const Eigen::VectorXd diff = sp.R * fr.beta - sp.r;
  const Eigen::MatrixXd RVR = sp.R * fr.vcov * sp.R.transpose();
  refuse_zero_variance(sp.text, sp.R, fr, RVR);
  se = 0;
  if (out.q > 1) {
    out.stat = wald_f(diff, RVR, "--joint");
    out.crve_p_value = f_upper_p(out.stat, out.q, fr.df_inference);
  } else {
    se = std::sqrt(RVR(0, 0));
    out.stat = diff(0) / se;
    out.crve_p_value = t_two_sided_p(out.stat, fr.df_inference);
  }
  return diff;
}

// 7b. The residual parts: WCR with a CI carries u(delta) = uhat + delta h (two parts); otherwise
// one vector, u_tilde (WCR: uhat moved onto the null; WCU: uhat).
struct Residuals {
  std::vector<double> u_tilde, h;
  std::vector<const double*> parts;
};

void residual_parts(const WildContext& cx, const TestSpec& sp, const Eigen::VectorXd& diff, bool two_parts,
                    Residuals& rs) {
  const FitResult& fr = cx.fr;
  const std::size_t n = cx.uhat.size();
  const Eigen::MatrixXd RAR = sp.R * fr.bread * sp.R.transpose();
  const Eigen::VectorXd h_dir = cx.X * (fr.bread * sp.R.transpose() * RAR.inverse()).eval().col(0);
  rs.u_tilde.resize(n);
  rs.h.resize(n);
  if (cx.wo.impose_null) {
    const Eigen::VectorXd shift = cx.X * (fr.bread * sp.R.transpose() * RAR.inverse() * diff);
    for (std::size_t i = 0; i < n; ++i) rs.u_tilde[i] = cx.uhat[i] + shift(static_cast<Eigen::Index>(i));
  } else {
    rs.u_tilde = cx.uhat;
  }
  for (std::size_t i = 0; i < n; ++i) rs.h[i] = h_dir(static_cast<Eigen::Index>(i));
  if (two_parts) {
    rs.parts = {cx.uhat.data(), rs.h.data()};
  } else {
    rs.parts = {rs.u_tilde.data()};
  }
}

// The task of a test's replications (WildOptions::runner): its key, replications and shape.
TaskSpec wild_task(std::size_t test_index, const TestSpec& sp, std::uint64_t n_rep, std::uint64_t align, std::size_t width) {
  return {"test " + std::to_string(test_index + 1) + ": " + sp.text, n_rep, align, kBootCountFields, width};
}


// The coefficients of a run, replication by replication (WildOptions::runner's values).
std::vector<double> interleaved(const WildCoefs& c) {
  const std::size_t n = c.n0.size(), w = c.n1.empty() ? 2 : 5;
  std::vector<double> v(n * w);
  for (std::size_t b = 0; b < n; ++b) {
    double* o = v.data() + b * w;
    o[0] = c.n0[b];
    o[1] = c.d0[b];
    if (w == 5) {
      o[2] = c.n1[b];
      o[3] = c.d1[b];
      o[4] = c.d2[b];
    }
  }
  return v;
}

WildCoefs columns(const std::vector<double>& v, std::size_t w) {
  WildCoefs c;
  const std::size_t n = w ? v.size() / w : 0;
  c.n0.resize(n);
  c.d0.resize(n);
  if (w == 5) {
    c.n1.resize(n);
    c.d1.resize(n);
    c.d2.resize(n);
  }
  for (std::size_t b = 0; b < n; ++b) {
    const double* o = v.data() + b * w;
    c.n0[b] = o[0];
    c.d0[b] = o[1];
    if (w == 5) {
      c.n1[b] = o[2];
      c.d1[b] = o[3];
      c.d2[b] = o[4];
    }
  }
  return c;
}

// 7c. Exact enumeration by a Gray-code walk (kernels/gray_walk.hpp) with H = sum_S w_S K_S'K_S
// (G x G): O(G) per sign vector.
BootCounts run_gray_walk(const WildContext& cx, const WildEngine& eng, const TestSpec& sp, std::size_t test_index,
                         WildTest& out) {
  const std::int32_t G = cx.G;
  std::vector<Eigen::MatrixXd> K;
  Eigen::VectorXd Cv;
  eng.dense_maps(K, Cv);
  Eigen::MatrixXd H = Eigen::MatrixXd::Zero(G, G);
  for (std::size_t s = 0; s < K.size(); ++s) H += eng.terms()[s].weight * K[s].transpose() * K[s];
  kernels::GrayProblem gp;
  gp.H = H.data();
  gp.C = Cv.data();
  gp.n_clu = G;
  gp.t = out.stat;
  gp.tol = tie_tolerance(out.stat);
  gp.inclusive = cx.wo.ties == Ties::kInclusive;
  const std::uint64_t n_vec = std::uint64_t{1} << (G - 1);
  if (cx.wo.keep_draws)
    throw InvalidInput("--save-draws: with " + std::to_string(G) + " clusters the 2^" + std::to_string(G) +
                       " sign vectors are walked, not stored; add --enumerate never to draw --B replications");
  const TaskSpec task = wild_task(test_index, sp, n_vec, kernels::kGrayBlock, 0);
  ProgressReporter progress("enumeration of 2^" + std::to_string(G) + " sign vectors for '" + sp.text + "'",
                            "sign-vector pairs", planned_replications(cx.wo.runner, task), cx.wo.progress);
  BootCounts total;
  if (!cx.wo.runner) {
    total = cx.backend.wild_enumerate(gp, &progress);
  } else {
    const Segment all = cx.wo.runner->run(task, [&](RepRange r) {
      kernels::GrayProblem part = gp;
      part.lo = r.begin;
      part.hi = r.end;
      return Segment{r, counts_of(cx.backend.wild_enumerate(part, &progress)), {}};
    }, &progress);
    total = counts_from(all.counts);
  }
  progress.finish();
  out.enumerated = true;
  out.work_per_replication = G + 3.0;  // y += dv H[:, g], the numerator and the denominator
  out.n_boot = static_cast<std::int64_t>(std::uint64_t{1} << G);
  if (cx.wo.ci) out.note = "no CI: with " + std::to_string(G) + " clusters the enumeration is walked, not stored";
  return total;
}

// 7d. The replications on the backend (drawn, or every sign vector stored), counted at the
// observed statistic; with the CI, kept and inverted.
// The run's replications through WildOptions::runner: each range a run of the prepared problem,
// its counts and (for the CI) its coefficients; the whole test's coefficients counted on the host.
std::size_t coef_width(const WildProblem& pr, const WildRunOptions& o) {
  return o.keep_coefs ? (pr.q == 1 && pr.n_part == 2 ? 5 : 2) : 0;
}

WildRun run_through(const WildContext& cx, const WildProblem& pr, const WildRunOptions& o, const TaskSpec& task) {
  const std::unique_ptr<PreparedWild> prepared = cx.backend.prepare_wild(pr);
  std::map<std::uint64_t, std::vector<double>> draws;  // keep_draws: each range's statistics by its start
  const Segment all = cx.wo.runner->run(task, [&](RepRange r) {
    WildRunOptions ro = o;
    ro.b0 = o.b0 + r.begin;
    ro.n_rep = r.size();
    ro.trace_keep = cx.wo.keep_draws ? static_cast<std::size_t>(r.size()) : 0;
    WildRun part = prepared->run(ro);
    if (cx.wo.keep_draws) draws[r.begin] = std::move(part.trace);
    Segment seg{r, counts_of(part.counts), {}};
    if (o.keep_coefs) seg.values = interleaved(part.reps->coefficients());
    return seg;
  }, o.progress);
  WildRun run;
  run.counts = counts_from(all.counts);
  for (auto& [begin, piece] : draws) run.trace.insert(run.trace.end(), piece.begin(), piece.end());
  if (cx.wo.keep_draws && run.trace.size() != task.n_rep)
    throw InvalidInput("--save-draws needs every replication computed in this run (not with --shard, --resume or MPI ranks)");
  // a shard's share cannot make the CI: no replicates, so none is inverted
  if (o.keep_coefs && cx.wo.runner->complete())
    run.reps = cpu::host_wild_replicates(columns(all.values, task.width), wild_pairs(pr, o), o.min_team_work);
  return run;
}

BootCounts run_replications(const WildContext& cx, WildEngine& eng, const TestSpec& sp, std::size_t test_index,
                            double se, double delta0, WildTest& out, std::vector<double>* trace) {
  const WildOptions& wo = cx.wo;
  const bool joint = out.q > 1, want_ci = wo.ci && !joint;
  const WildProblem& pr = eng.problem();
  WildRunOptions o;
  o.seed = wo.seed;
  o.weight = wo.weight;
  o.enumerate = cx.enumerate;
  o.n_rep = cx.enumerate ? (std::uint64_t{1} << (cx.G - 1)) : static_cast<std::uint64_t>(wo.n_boot);
  o.chunk = wo.chunk;
  o.trace_keep = wo.keep_draws ? static_cast<std::size_t>(o.n_rep) : cx.trace_keep;
  o.count_delta = joint ? 0.0 : delta0;
  o.count_t = out.stat;
  o.count_tol = tie_tolerance(out.stat);
  o.inclusive = wo.ties == Ties::kInclusive;
  o.keep_coefs = want_ci;
  o.min_team_work = wo.min_team_work;
  check_wild_memory(pr, o, sp.text, wo.max_memory, wo.runner != nullptr);
  const TaskSpec task = wild_task(test_index, sp, o.n_rep, 1, coef_width(pr, o));
  ProgressReporter progress("wild bootstrap of '" + sp.text + "'", "replications",
                            planned_replications(wo.runner, task), wo.progress);
  o.progress = &progress;
  WildRun run = cx.wo.runner ? run_through(cx, pr, o, task) : cx.backend.wild_replicates(pr, o);
  progress.finish();
  out.enumerated = cx.enumerate;
  out.work_per_replication = wild_work_per_replication(pr);
  out.n_boot = static_cast<std::int64_t>(cx.enumerate ? 2 * o.n_rep : o.n_rep);
  if (wo.keep_draws) out.draws = run.trace;
  if (trace) *trace = std::move(run.trace);
  if (want_ci && run.reps) {
    // WCU: n1 = d1 = d2 = 0, so t* does not depend on r; only the observed t(r) moves
    const double crit = t_quantile(1 - (1 - wo.level) / 2, cx.fr.df_inference);
    const double rb = (sp.R * cx.fr.beta)(0);
    const bool inclusive = wo.ties == Ties::kInclusive;
    const auto p_at = [&](double r) {
      const double delta = rb - r, t = delta / se;
      return p_from_counts(run.reps->count(delta, t, tie_tolerance(t), inclusive), wo.pvalue, false);
    };
    invert_set(p_at, rb, se, crit, 1.0 - wo.level, out);
  }
  return run.counts;
}

// 7. One test, from its restriction to its p-value.
WildTest run_test(const WildContext& cx, WildEngine& eng, const TestSpec& sp, std::size_t test_index,
                  std::vector<double>* trace) {
  WildTest out;
  out.hypothesis = sp.text;
  out.q = static_cast<int>(sp.R.rows());
  const bool joint = out.q > 1;
  out.test = joint ? "wald" : "t";
  double se = 0;
  const Eigen::VectorXd diff = observed_statistic(sp, cx.fr, out, se);
  const bool gray = cx.enumerate && !joint && (cx.wo.force_gray || cx.G > 22);
  if (cx.enumerate && joint && cx.G > 22)
    throw InvalidInput("--joint with enumeration supports at most 22 bootstrap clusters; use --enumerate never");
  Residuals rs;
  residual_parts(cx, sp, diff, cx.wo.impose_null && cx.wo.ci && !joint && !gray, rs);
  eng.setup(sp.R, rs.parts);
  const BootCounts total = gray ? run_gray_walk(cx, eng, sp, test_index, out)
                                : run_replications(cx, eng, sp, test_index, se, joint ? 0.0 : diff(0), out, trace);
  out.n_finite = total.finite;
  out.n_exceed = exceedances(total, cx.wo.pvalue, joint);
  out.p_value = p_from_counts(total, cx.wo.pvalue, joint);
  return out;
}

// 8. The multiple-testing adjustment over the tests, and the run's notes.
void adjust_and_note(const WildOptions& wo, bool enumerate, std::int32_t G, WildResult& res) {
  // an IV model's AR rows are their own family beside the WRE/WUE rows (one of each per --test)
  auto family = [](const WildTest& t) { return t.test == "ar"; };
  for (WildTest& t : res.tests) {
    const double m = static_cast<double>(
        std::count_if(res.tests.begin(), res.tests.end(), [&](const WildTest& u) { return family(u) == family(t); }));
    const double p = t.p_value;
    switch (wo.padjust) {
      case PAdjust::kNone: t.p_value_adjusted = p; break;
      case PAdjust::kBonferroni: t.p_value_adjusted = std::min(1.0, p * m); break;
      case PAdjust::kSidak: t.p_value_adjusted = 1.0 - std::pow(1.0 - p, m); break;
    }
  }
  if (enumerate) res.notes.push_back("exact enumeration of all 2^" + std::to_string(G) + " Rademacher sign vectors");
  if (!res.fe_reprojected.empty()) {
    std::string s;
    for (const auto& f : res.fe_reprojected) s += (s.empty() ? "" : ", ") + f;
    res.notes.push_back("fixed effects not nested in the bootstrap clusters, re-projected exactly: " + s);
  }
}

}  // namespace wild_detail

using namespace wild_detail;

WildResult wild_bootstrap(Design& d, const FitOptions& fo, const WildOptions& wo, const Backend& backend,
                          WildTrace* trace) {
  check_options(wo);
  if (d.n_endo > 0) return wre_bootstrap(d, fo, wo, backend, trace);
  if (wo.ar)
    throw InvalidInput("--ar is the Anderson-Rubin test of an IV model; formula '" + d.formula +
                       "' has no IV part (write it as y ~ x | fe | d ~ z)");
  const Grouping boot = bootstrap_clusters(d, wo);
  WildResult res = fit_for_wild(d, fo, wo, boot, backend);
  const FitResult& fr = res.fit;
  Grouping obs;
  WildEngine eng(d, fr, boot, variance_terms(d, fo, fr, boot, obs));
  res.fe_reprojected = eng.reprojected();
  const std::vector<double> uhat(
      d.y.begin(), d.y.end());  // the residuals: fit() left the unrestricted ones (scaled) in d.y
  const std::vector<TestSpec> specs = parse_tests(wo, fr);
  const std::int32_t G = boot.n_levels;
  const bool enumerate = plan_enumeration(wo, G, res);
  const WildContext cx{fr, wo, backend,
                       Eigen::Map<const Eigen::MatrixXd>(d.X.data(), static_cast<Eigen::Index>(d.n_obs),
                                                         static_cast<Eigen::Index>(fr.beta.size())),
                       uhat, G, enumerate, trace ? trace->keep : 0};
  if (trace) trace->stats.assign(specs.size(), {});
  for (std::size_t ti = 0; ti < specs.size(); ++ti)
    res.tests.push_back(run_test(cx, eng, specs[ti], ti, trace ? &trace->stats[ti] : nullptr));
  adjust_and_note(wo, enumerate, G, res);
  return res;
}

}  // namespace panelboot
