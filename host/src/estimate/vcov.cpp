#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <unordered_map>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "estimate/detail.hpp"
#include "panelboot/error.hpp"

namespace panelboot::detail {

namespace {

// Columns [j0, j0 + NC) of the scores S (row-major, n_reg wide) over rows [b, e): S_gj +=
// x_ij u_i, a run of one group summed in registers (each cell adds its rows in row order: the
// bits of one row at a time, and of any split of the rows into ranges taken in order), NC
// chains of additions side by side.
template <int NC>
void scores_of_group(const double* X, const double* u, std::size_t n_obs, std::size_t n_reg,
                     const std::int32_t* code, std::size_t j0, std::size_t b, std::size_t e,
                     double* s) {
  const double* x[NC];
  double run[NC];
  for (int c = 0; c < NC; ++c) x[c] = X + (j0 + static_cast<std::size_t>(c)) * n_obs;
  std::int32_t g = code[b];
  double* cell = s + static_cast<std::size_t>(g) * n_reg + j0;
  for (int c = 0; c < NC; ++c) run[c] = cell[c];
  for (std::size_t i = b; i < e; ++i) {
    if (code[i] != g) {
      for (int c = 0; c < NC; ++c) cell[c] = run[c];
      g = code[i];
      cell = s + static_cast<std::size_t>(g) * n_reg + j0;
      for (int c = 0; c < NC; ++c) run[c] = cell[c];
    }
    const double ui = u[i];
    for (int c = 0; c < NC; ++c) run[c] += x[c][i] * ui;
  }
  for (int c = 0; c < NC; ++c) cell[c] = run[c];
}

// scores_of_group<1> .. <8>, by the number of columns.
using ScoresOfGroup = void (*)(const double*, const double*, std::size_t, std::size_t,
                               const std::int32_t*, std::size_t, std::size_t, std::size_t, double*);
template <std::size_t... I>
constexpr std::array<ScoresOfGroup, sizeof...(I)> scores_kernels(std::index_sequence<I...>) {
  return {&scores_of_group<static_cast<int>(I) + 1>...};
}
constexpr std::array<ScoresOfGroup, 8> kScoresOfGroup =
    scores_kernels(std::make_index_sequence<8>());

// Columns [j0, j1) of the scores over rows [b, e) (b < e), up to eight columns at a time.
void scores_of_columns(const double* X, const double* u, std::size_t n_obs, std::size_t n_reg,
                       const std::int32_t* code, std::size_t j0, std::size_t j1, std::size_t b,
                       std::size_t e, double* s) {
  for (std::size_t j = j0; j < j1;) {
    const std::size_t nc = std::min<std::size_t>(j1 - j, kScoresOfGroup.size());
    kScoresOfGroup[nc - 1](X, u, n_obs, n_reg, code, j, b, e, s);
    j += nc;
  }
}

using RowMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// sum_g s_g s_g' from the scores.
Eigen::MatrixXd meat_of_scores(const RowMat& S) {
  const Eigen::MatrixXd Sc = S;  // column-major: the product's bits as before the one-pass sums
  return Sc.transpose() * Sc;
}

// Where each thread's rows start: near n t / T, moved on to the start of a group's run (the
// groups contiguous), so no group's rows are split between threads.
std::vector<std::size_t> run_aligned_starts(const std::int32_t* code, std::size_t n,
                                            std::size_t threads) {
  std::vector<std::size_t> start(threads + 1, n);
  start[0] = 0;
  for (std::size_t t = 1; t < threads; ++t) {
    std::size_t p = std::max(start[t - 1], n * t / threads);
    while (p > 0 && p < n && code[p] == code[p - 1]) ++p;
    start[t] = p;
  }
  return start;
}

}  // namespace

Eigen::MatrixXd cluster_meat(const double* X, const double* u, std::size_t n_obs, std::size_t n_reg,
                             const std::int32_t* code, std::int32_t n_groups) {
  // scores S (G x k): S_g = sum_{i in g} x_i u_i
  RowMat S = RowMat::Zero(n_groups, static_cast<Eigen::Index>(n_reg));
  double* s = S.data();
  // Each thread takes a range of columns in one pass over the rows, a run of one cluster summed
  // in registers (sorted panels): every cell adds its rows in row order, as one row at a time
  // did, for any thread count.
  const bool team =
      n_reg > 1 && static_cast<double>(n_obs) * static_cast<double>(n_reg) >= kMinTeamValues;
#pragma omp parallel if (team)
  {
    std::size_t j0 = 0, j1 = n_reg;
#ifdef _OPENMP
    const std::size_t nt = static_cast<std::size_t>(omp_get_num_threads()),
                      t = static_cast<std::size_t>(omp_get_thread_num());
    j0 = n_reg * t / nt;
    j1 = n_reg * (t + 1) / nt;
#endif
    if (j1 > j0 && n_obs > 0) scores_of_columns(X, u, n_obs, n_reg, code, j0, j1, 0, n_obs, s);
  }
  return meat_of_scores(S);
}

bool contiguous_groups(const Grouping& g) {
  const std::size_t n = g.code.size();
  const std::int32_t* c = g.code.data();
  std::vector<char> started(static_cast<std::size_t>(g.n_levels), 0);  // a run of this level seen
  for (std::size_t i = 0; i < n; ++i) {
    if (i > 0 && c[i] == c[i - 1]) continue;
    char& s = started[static_cast<std::size_t>(c[i])];
    if (s) return false;  // a second run
    s = 1;
  }
  return true;
}

Eigen::MatrixXd residuals_and_meat(const double* X, double* u, std::size_t n_obs, std::size_t n_reg,
                                   const Eigen::VectorXd& beta, const Grouping& g) {
  RowMat S = RowMat::Zero(g.n_levels, static_cast<Eigen::Index>(n_reg));
  const bool team = static_cast<double>(n_obs) * static_cast<double>(n_reg + 1) >= kMinTeamValues;
  std::size_t threads = 1;
#ifdef _OPENMP
  if (team) threads = static_cast<std::size_t>(std::max(1, omp_get_max_threads()));
#endif
  const std::vector<std::size_t> start = run_aligned_starts(g.code.data(), n_obs, threads);
  constexpr std::size_t kBlock =
      8192;  // rows whose residuals are written, then read for the scores
#pragma omp parallel for schedule(static, 1) if (threads > 1)
  for (std::ptrdiff_t t = 0; t < static_cast<std::ptrdiff_t>(threads); ++t)
    for (std::size_t b = start[static_cast<std::size_t>(t)],
                     e = start[static_cast<std::size_t>(t) + 1];
         b < e; b += kBlock) {
      const std::size_t m = std::min(kBlock, e - b);
      residuals_of_rows(X, n_obs, n_reg, beta, b, m, u);
      scores_of_columns(X, u, n_obs, n_reg, g.code.data(), 0, n_reg, b, b + m, S.data());
    }
  return meat_of_scores(S);
}

namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%g", v);
  return b;
}

}  // namespace

// Intersection of several groupings, densified.
Grouping intersect(const std::vector<const Grouping*>& gs) {
  Grouping out;
  const std::size_t n = gs[0]->code.size();
  out.code.resize(n);
  std::unordered_map<std::int64_t, std::int32_t> map;
  for (std::size_t i = 0; i < n; ++i) {
    std::int64_t key = 0;
    for (const Grouping* g : gs) key = key * g->n_levels + g->code[i];
    auto it = map.find(key);
    if (it == map.end()) it = map.emplace(key, static_cast<std::int32_t>(map.size())).first;
    out.code[i] = it->second;
  }
  out.n_levels = static_cast<std::int32_t>(map.size());
  for (const Grouping* g : gs) out.name += (out.name.empty() ? "" : "#") + g->name;
  return out;
}

}  // namespace panelboot::detail

namespace panelboot {

std::vector<ClusterTerm> clustering_terms(const std::vector<Grouping>& clusters, MultiwayAdj adj,
                                          double N, double K, bool small) {
  std::vector<ClusterTerm> out;
  const std::size_t n_cl = clusters.size();
  if (n_cl == 0) return out;
  if (n_cl > 4) throw InvalidInput("--cluster: at most four cluster variables");
  std::int32_t g_min = clusters[0].n_levels;
  for (const Grouping& g : clusters) g_min = std::min(g_min, g.n_levels);
  const double small_n = (N - 1) / (N - K);
  for (unsigned mask = 1; mask < (1u << n_cl); ++mask) {
    std::vector<const Grouping*> gs;
    for (std::size_t c = 0; c < n_cl; ++c)
      if (mask & (1u << c)) gs.push_back(&clusters[c]);
    ClusterTerm t;
    t.grouping = gs[0];
    if (gs.size() > 1) {
      t.owned = std::make_shared<Grouping>(detail::intersect(gs));
      t.grouping = t.owned.get();
    }
    const double G = adj == MultiwayAdj::kMin || n_cl == 1 ? static_cast<double>(g_min)
                                                           : static_cast<double>(t.grouping->n_levels);
    const double sign = (gs.size() % 2 == 1) ? 1.0 : -1.0;
    // G/(G-1) is undefined for an intersection with a single cell; such a term has no
    // between-cluster variation and enters with factor 1.
    t.weight = small ? sign * (G > 1 ? G / (G - 1) : 1.0) * small_n : sign;
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace panelboot

namespace panelboot::detail {

namespace {

VcovOutput iid_vcov(const VcovInput& in, double rss) {
  VcovOutput out;
  out.type = "iid";
  const bool small = in.opts.small;
  out.df = small ? in.N - in.K_all : kInf;
  out.V = (rss / (small ? in.N - in.K_all : in.N)) * in.bread;
  out.label = small ? "iid, sigma^2 = e'e/(N-K), K = " + num(in.K_all) : std::string("iid, sigma^2 = e'e/N");
  return out;
}

VcovOutput hc1_vcov(const VcovInput& in) {
  VcovOutput out;
  const Eigen::Index k = static_cast<Eigen::Index>(in.n_reg);
  const std::size_t n = in.n_obs;
  out.type = "hc1";
  const bool small = in.opts.small;
  out.df = small ? in.N - in.K_all : kInf;
  Eigen::MatrixXd meat = Eigen::MatrixXd::Zero(k, k);
  const std::size_t chunk = kRowChunk;
  for (std::size_t b = 0; b < n; b += chunk) {
    const std::size_t m = std::min(chunk, n - b);
    Eigen::Map<const Eigen::VectorXd> uc(in.u + b, static_cast<Eigen::Index>(m));
    const Eigen::MatrixXd Xu = uc.asDiagonal() * row_chunk(in.X, n, in.n_reg, b, m);
    meat.noalias() += Xu.transpose() * Xu;
  }
  out.V = (small ? in.N / (in.N - in.K_all) : 1.0) * in.bread * meat * in.bread;
  out.label = small ? "heteroskedasticity-robust HC1, N/(N-K), K = " + num(in.K_all)
                    : std::string("heteroskedasticity-robust, no small-sample factor (HC0)");
  return out;
}

std::string cluster_label(const VcovInput& in, const VcovOutput& out) {
  const Design& d = in.design;
  const std::size_t n_cl = d.clusters.size();
  std::string cl;
  for (std::size_t c = 0; c < n_cl; ++c)
    cl += (c ? " and " : "") + out.cluster_names[c] + " (G=" + std::to_string(out.n_clusters[c]) + ")";
  if (!in.opts.small) return "cluster-robust by " + cl + ", no small-sample factor";
  std::string label = "cluster-robust by " + cl + ", G/(G-1)*(N-1)/(N-K), K = " + num(in.K) +
                      (d.fe.empty() ? std::string()
                       : in.opts.dof_fe == DofFe::kNested
                           ? std::string(" (FE nested in a cluster not counted: xtreg/reghdfe/fixest)")
                           : std::string(" (every FE level counted: areg)"));
  if (n_cl > 1)
    label += in.opts.multiway_adj == MultiwayAdj::kMin
                 ? "; multiway: one G_min/(G_min-1) for every term (fixest/reghdfe)"
                 : "; multiway: each term its own G/(G-1) (Cameron-Gelbach-Miller, sandwich)";
  return label;
}

// A multiway variance can have negative eigenvalues: said, or clipped with --vcov-psd-fix.
void check_multiway_psd(const FitOptions& opts, VcovOutput& out) {
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(0.5 * (out.V + out.V.transpose()));
  const double lmin = es.eigenvalues().minCoeff(), lmax = es.eigenvalues().maxCoeff();
  if (!(lmin < -1e-12 * std::max(lmax, 0.0))) return;
  if (opts.psd_fix) {
    out.V = es.eigenvectors() * es.eigenvalues().cwiseMax(0.0).asDiagonal() * es.eigenvectors().transpose();
    out.warnings.push_back("multiway variance was not positive semi-definite (min eigenvalue " + num(lmin) +
                           "); negative eigenvalues set to zero (--vcov-psd-fix)");
  } else {
    out.warnings.push_back("multiway variance is not positive semi-definite (min eigenvalue " + num(lmin) +
                           "); --vcov-psd-fix clips negative eigenvalues");
  }
}

VcovOutput cluster_vcov(const VcovInput& in) {
  VcovOutput out;
  const Design& d = in.design;
  const Eigen::Index k = static_cast<Eigen::Index>(in.n_reg);
  out.type = "cluster";
  if (d.clusters.empty()) throw InvalidInput("--vcov cluster needs --cluster VAR (or VAR1,VAR2)");
  for (const Grouping& g : d.clusters) {
    out.cluster_names.push_back(g.name);
    out.n_clusters.push_back(g.n_levels);
  }
  const std::int32_t g_min = *std::min_element(out.n_clusters.begin(), out.n_clusters.end());
  Eigen::MatrixXd meat_sum = Eigen::MatrixXd::Zero(k, k);
  for (const ClusterTerm& t : clustering_terms(d.clusters, in.opts.multiway_adj, in.N, in.K, in.opts.small))
    meat_sum += t.weight * (in.first_meat && t.grouping == &d.clusters[0]
                                ? *in.first_meat
                                : cluster_meat(in.X, in.u, in.n_obs, in.n_reg,
                                               t.grouping->code.data(), t.grouping->n_levels));
  out.V = in.bread * meat_sum * in.bread;
  out.df = in.opts.small ? g_min - 1 : kInf;
  out.label = cluster_label(in, out);
  if (d.clusters.size() > 1) check_multiway_psd(in.opts, out);
  return out;
}

VcovOutput dk_vcov(const VcovInput& in) {
  VcovOutput out;
  const Design& d = in.design;
  const Eigen::Index k = static_cast<Eigen::Index>(in.n_reg);
  const std::size_t n = in.n_obs;
  out.type = "dk";
  const std::int32_t T = d.time.n_levels;
  if (T < 2) throw InvalidInput("--vcov dk needs at least two time periods");
  const int L = in.opts.dk_lag >= 0 ? in.opts.dk_lag
                                    : static_cast<int>(std::floor(std::pow(static_cast<double>(T), 0.25)));
  if (L >= T)
    throw InvalidInput("--dk-lag " + std::to_string(L) + " must be below the number of periods (" +
                       std::to_string(T) + ")");
  out.dk_lag = L;
  // h_t = sum_{i in t} x_i u_i  (T x k)
  Eigen::MatrixXd H = Eigen::MatrixXd::Zero(T, k);
  for (Eigen::Index j = 0; j < k; ++j) {
    const double* x = in.X + static_cast<std::size_t>(j) * n;
    for (std::size_t i = 0; i < n; ++i) H(d.time.code[i], j) += x[i] * in.u[i];
  }
  Eigen::MatrixXd S = H.transpose() * H;
  for (int l = 1; l <= L; ++l) {
    const double wl = 1.0 - static_cast<double>(l) / (L + 1);
    const Eigen::MatrixXd G = H.bottomRows(T - l).transpose() * H.topRows(T - l);
    S += wl * (G + G.transpose());
  }
  out.V = in.bread * S * in.bread;
  out.df = in.opts.small ? T - 1 : kInf;
  out.label = "Driscoll-Kraay, Bartlett kernel, lag " + std::to_string(L) + ", T = " + std::to_string(T) +
              ", no small-sample factor (plm::vcovSCC)";
  return out;
}

}  // namespace

VcovOutput compute_vcov(const VcovInput& in) {
  VcovOutput out;
  switch (in.opts.vcov) {
    case VcovType::kIid: {
      out = iid_vcov(in, sum_of_squares(in.u, in.n_obs));
      break;
    }
    case VcovType::kHc1: out = hc1_vcov(in); break;
    case VcovType::kCluster: out = cluster_vcov(in); break;
    case VcovType::kDk: out = dk_vcov(in); break;
  }
  char ref[64];
  std::snprintf(ref, sizeof ref, "t(%g)", out.df);
  out.reference = std::isinf(out.df) ? "N(0,1)" : ref;
  if (!in.opts.small) out.label += "; large-sample form (ivreg2/ivreghdfe default)";
  return out;
}

}  // namespace panelboot::detail
