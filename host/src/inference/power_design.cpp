// Synthetic designs of `panelboot power --design`: the specification, the stacked data set and
// the errors of each replication (panelboot/power_design.hpp; docs/POWER.md).
#include "panelboot/power_design.hpp"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <numeric>

#include "panelboot/error.hpp"
#include "panelboot/kernels/wild_weights.hpp"
#include "panelboot/memory.hpp"
#include "panelboot/power.hpp"
#include "panelboot/text.hpp"

namespace panelboot {
namespace {

constexpr std::int32_t kMaxDesignClusters = 1000000;
constexpr std::int32_t kMaxDesignPeriods = 100000;
constexpr double kMaxDesignRows = 2147483647.0;  // int32 row indices

std::vector<std::string> split_on(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = s.find(sep, start);
    out.push_back(trimmed(s.substr(start, at == std::string::npos ? std::string::npos : at - start)));
    if (at == std::string::npos) return out;
    start = at + 1;
  }
}

[[noreturn]] void bad(const std::string& key, const std::string& value, const std::string& why) {
  throw InvalidInput("--design: " + key + "=" + value + ": " + why);
}

double real_value(const std::string& key, const std::string& v) {
  char* end = nullptr;
  errno = 0;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE || !std::isfinite(x)) bad(key, v, "not a number");
  return x;
}

long long whole_value(const std::string& key, const std::string& v, long long lo, long long hi) {
  char* end = nullptr;
  errno = 0;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE || x < lo || x > hi)
    bad(key, v, "not a whole number from " + std::to_string(lo) + " to " + std::to_string(hi));
  return x;
}

std::string number_text(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  return buf;
}

// sizes=: "equal", or shares separated by ':' whose last item may be "rest".
std::vector<double> parse_shares(const std::string& text, std::int32_t G) {
  if (text == "equal") return std::vector<double>(static_cast<std::size_t>(G), 1.0 / G);
  std::vector<std::string> items = split_on(text, ':');
  const bool rest = items.back() == "rest";
  if (rest) items.pop_back();
  std::vector<double> shares;
  double sum = 0;
  for (const std::string& it : items) {
    char* end = nullptr;
    const double s = std::strtod(it.c_str(), &end);
    if (it.empty() || end != it.c_str() + it.size() || it.find_first_of("xXnN") != std::string::npos)
      bad("sizes", text, "'" + it + "' is not a share (a decimal number, or 'rest' last)");
    if (!(s > 0 && s < 1)) bad("sizes", text, "a share must lie strictly between 0 and 1");
    shares.push_back(s);
    sum += s;
  }
  const std::size_t given = shares.size();
  if (given > static_cast<std::size_t>(G))
    bad("sizes", text, std::to_string(given) + " shares for " + std::to_string(G) + " clusters");
  if (rest) {
    if (given == static_cast<std::size_t>(G)) bad("sizes", text, "'rest' has no cluster left to spread over");
    if (!(sum < 1 - 1e-12)) bad("sizes", text, "the shares leave nothing for 'rest' (they sum to " + number_text(sum) + ")");
    const double each = (1 - sum) / static_cast<double>(static_cast<std::size_t>(G) - given);
    shares.resize(static_cast<std::size_t>(G), each);
    return shares;
  }
  if (given != static_cast<std::size_t>(G))
    bad("sizes", text, std::to_string(given) + " shares for " + std::to_string(G) + " clusters; give one per cluster or end with ':rest'");
  if (std::fabs(sum - 1) > 1e-9) bad("sizes", text, "the shares sum to " + number_text(sum) + ", not 1");
  return shares;
}

// sizes= as the normalized text shows it: "equal" when every share is 1/G, else the shares given
// (15 significant digits, ':'-separated, no blanks) and ":rest" when the list ended with rest;
// so "0.40 : rest" and "0.4:rest" are one design (one text, one seed).
std::string sizes_text(const std::vector<double>& shares, const std::string& given) {
  const double G = static_cast<double>(shares.size());
  if (std::all_of(shares.begin(), shares.end(), [&](double s) { return std::fabs(s * G - 1) < 1e-12; })) return "equal";
  std::vector<std::string> items = split_on(given, ':');
  const bool rest = items.back() == "rest";
  const std::size_t listed = items.size() - (rest ? 1 : 0);
  std::string out;
  for (std::size_t g = 0; g < listed; ++g) out += (g ? ":" : "") + number_text(shares[g]);
  return rest ? out + ":rest" : out;
}

void normalize(SyntheticDesign& d) {
  d.text = "clusters=" + std::to_string(d.clusters) + ",periods=" + std::to_string(d.periods) + ",obs=" + std::to_string(d.obs) +
           ",sizes=" + d.sizes + ",rho_x=" + number_text(d.rho_x) + ",rho_u=" + number_text(d.rho_u) +
           ",shocks=" + (d.shocks ? "cluster-period,shock_share=" + number_text(d.shock_share) : std::string("none")) +
           (d.xdraws > 1 ? ",xdraws=" + std::to_string(d.xdraws) : std::string());
}

// A stationary AR(1) with unit variance at the n points of `rows` (in time order), from the N(0, 1)
// draws counter(t): v_0 = z_0, v_t = rho v_{t-1} + sqrt(1 - rho^2) z_t.
template <class Draw>
void ar1_series(double rho, std::size_t n, Draw z, double* out, const std::int32_t* rows) {
  const double innovation = std::sqrt(1 - rho * rho);
  double prev = 0;
  for (std::size_t t = 0; t < n; ++t) {
    prev = t == 0 ? z(t) : rho * prev + innovation * z(t);
    out[rows[t]] = prev;
  }
}

}  // namespace

SyntheticDesign parse_design(const std::string& spec) {
  SyntheticDesign d;
  std::vector<std::string> seen;
  std::string sizes = "equal";
  bool obs_given = false, share_given = false;
  for (const std::string& item : split_on(spec, ',')) {
    const std::size_t eq = item.find('=');
    if (eq == std::string::npos)
      throw InvalidInput("--design: '" + item + "' is not key=value (keys: clusters, periods, obs, sizes, rho_x, rho_u, shocks, shock_share, xdraws)");
    const std::string key = trimmed(item.substr(0, eq)), v = trimmed(item.substr(eq + 1));
    if (std::find(seen.begin(), seen.end(), key) != seen.end()) throw InvalidInput("--design: " + key + " is given twice");
    seen.push_back(key);
    if (key == "clusters") d.clusters = static_cast<std::int32_t>(whole_value(key, v, 3, kMaxDesignClusters));
    else if (key == "periods") d.periods = static_cast<std::int32_t>(whole_value(key, v, 2, kMaxDesignPeriods));
    else if (key == "obs") {
      d.obs = whole_value(key, v, 1, static_cast<long long>(kMaxDesignRows));
      obs_given = true;
    } else if (key == "sizes") sizes = v.empty() ? "equal" : v;
    else if (key == "rho_x") {
      d.rho_x = real_value(key, v);
      if (!(d.rho_x >= 0 && d.rho_x < 1)) bad(key, v, "must lie in [0, 1) (an intra-cluster correlation and an AR(1) coefficient)");
    } else if (key == "rho_u") {
      d.rho_u = real_value(key, v);
      if (!(d.rho_u > -1 && d.rho_u < 1)) bad(key, v, "must lie strictly between -1 and 1 (a stationary AR(1))");
    } else if (key == "shocks") {
      if (v == "cluster-period") d.shocks = true;
      else if (v == "none") d.shocks = false;
      else bad(key, v, "choose none or cluster-period");
    } else if (key == "xdraws") {
      d.xdraws = static_cast<std::int32_t>(whole_value(key, v, 1, 100000));
    } else if (key == "shock_share") {
      d.shock_share = real_value(key, v);
      share_given = true;
      if (!(d.shock_share >= 0 && d.shock_share <= 1)) bad(key, v, "must lie in [0, 1] (the shock's share of the error variance)");
    } else {
      throw InvalidInput("--design: unknown key '" + key + "' (keys: clusters, periods, obs, sizes, rho_x, rho_u, shocks, shock_share, xdraws)");
    }
  }
  if (d.clusters == 0) throw InvalidInput("--design '" + spec + "' needs clusters=G (3 or more)");
  if (share_given && !d.shocks) throw InvalidInput("--design: shock_share is the share of shocks=cluster-period; add that");
  if (!obs_given) d.obs = 10LL * d.clusters;
  if (d.obs < d.clusters) bad("obs", std::to_string(d.obs), "fewer individuals per period than clusters (" + std::to_string(d.clusters) + ")");
  if (static_cast<double>(d.obs) * d.periods > kMaxDesignRows)
    throw InvalidInput("--design: obs x periods = " + number_text(static_cast<double>(d.obs) * d.periods) + " rows; at most 2^31 - 1");
  d.shares = parse_shares(sizes, d.clusters);
  d.sizes = sizes_text(d.shares, sizes);
  normalize(d);
  design_cluster_sizes(d);  // every cluster gets an individual
  return d;
}

std::vector<std::int64_t> design_cluster_sizes(const SyntheticDesign& d) {
  const std::size_t G = d.shares.size();
  std::vector<std::int64_t> n(G);
  std::vector<std::pair<double, std::size_t>> remainder(G);
  std::int64_t total = 0;
  for (std::size_t g = 0; g < G; ++g) {
    const double exact = d.shares[g] * static_cast<double>(d.obs);
    n[g] = static_cast<std::int64_t>(std::floor(exact + 1e-9));
    remainder[g] = {exact - static_cast<double>(n[g]), g};
    total += n[g];
  }
  std::stable_sort(remainder.begin(), remainder.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (std::size_t i = 0; total < d.obs && i < G; ++i, ++total) ++n[remainder[i].second];
  for (std::size_t g = 0; g < G; ++g)
    if (n[g] < 1)
      throw InvalidInput("--design '" + d.text + "': cluster " + std::to_string(g + 1) + " gets no individual (share " +
                         number_text(d.shares[g]) + " of obs=" + std::to_string(d.obs) + "); raise obs");
  return n;
}

void design_errors(const SyntheticDesign& d, const DesignLayout& L, std::uint64_t seed, std::uint64_t rep, double* u) {
  const std::uint32_t n = static_cast<std::uint32_t>(L.cell.size());
  for (const std::vector<std::int32_t>& rows : L.series)
    ar1_series(d.rho_u, rows.size(),
               [&](std::size_t t) { return kernels::wild_weight(seed, rep, static_cast<std::uint32_t>(rows[t]), kernels::WeightType::kNormal); },
               u, rows.data());
  if (!d.shocks || d.shock_share == 0) return;
  // the cluster-period shocks: one AR(1) series per cluster over its T cells, drawn at counters n + cell
  const std::int32_t T = d.periods;
  std::vector<double> s(static_cast<std::size_t>(L.n_cells));
  std::vector<std::int32_t> idx(static_cast<std::size_t>(T));
  for (std::int32_t c0 = 0; c0 < L.n_cells; c0 += T) {
    std::iota(idx.begin(), idx.end(), c0);
    ar1_series(d.rho_u, static_cast<std::size_t>(T),
               [&](std::size_t t) { return kernels::wild_weight(seed, rep, n + static_cast<std::uint32_t>(c0) + static_cast<std::uint32_t>(t), kernels::WeightType::kNormal); },
               s.data(), idx.data());
  }
  const double a = std::sqrt(1 - d.shock_share), b = std::sqrt(d.shock_share);
  for (std::uint32_t i = 0; i < n; ++i) u[i] = a * u[i] + b * s[static_cast<std::size_t>(L.cell[i])];
}

void correlated_regressor(const DesignLayout& L, std::int32_t periods, double icc, double rho, std::uint64_t seed,
                          std::uint64_t rep, double* x) {
  const std::int32_t T = periods;
  const std::uint32_t C = static_cast<std::uint32_t>(L.n_cells);
  std::vector<double> a(static_cast<std::size_t>(L.n_cells));
  std::vector<std::int32_t> idx(static_cast<std::size_t>(T));
  for (std::int32_t c0 = 0; c0 < L.n_cells; c0 += T) {  // a: one series per cluster over its T cells
    std::iota(idx.begin(), idx.end(), c0);
    ar1_series(rho, static_cast<std::size_t>(T),
               [&](std::size_t t) { return kernels::wild_weight(seed, rep, static_cast<std::uint32_t>(c0) + static_cast<std::uint32_t>(t), kernels::WeightType::kNormal); },
               a.data(), idx.data());
  }
  for (const std::vector<std::int32_t>& rows : L.series)  // z: one series per individual
    ar1_series(rho, rows.size(),
               [&](std::size_t t) { return kernels::wild_weight(seed, rep, C + static_cast<std::uint32_t>(rows[t]), kernels::WeightType::kNormal); },
               x, rows.data());
  const double wa = std::sqrt(icc), wz = std::sqrt(1 - icc);
  for (std::size_t i = 0; i < L.cell.size(); ++i) x[i] = wa * a[static_cast<std::size_t>(L.cell[i])] + wz * x[i];
}

std::string design_draw_key(const SyntheticDesign& d, std::int32_t m) {
  return m == 0 ? d.text : d.text + "#x" + std::to_string(m);
}

DataFrame synthetic_panel(const std::vector<SyntheticDesign>& designs, std::uint64_t seed, std::uint64_t max_memory) {
  double rows = 0;
  for (const SyntheticDesign& d : designs) rows += static_cast<double>(d.obs) * d.periods * d.xdraws;
  // the six columns here, and the fits' designs, residuals and batches later: ~ 40 doubles a row
  // (measured: a 2-million-row design peaked at 5.7 GB, 38 doubles a row, with --R 1 and crve)
  check_memory(rows * 8.0 * 40, max_memory, "the synthetic designs' " + number_text(rows) + " rows", "lower obs or periods");
  DataFrame df;
  df.source = "<synthetic design>";
  df.row_unit = "observation";
  const char* names[] = {"design", "cluster", "id", "period", "x", "y"};
  for (const char* nm : names) {
    Column c;
    c.name = nm;
    c.num.reserve(static_cast<std::size_t>(rows));
    df.columns.push_back(std::move(c));
  }
  std::int64_t cluster0 = 0, id0 = 0, block = 0;
  for (const SyntheticDesign& d : designs)
   for (std::int32_t m = 0; m < d.xdraws; ++m) {
    ++block;
    const std::vector<std::int64_t> sizes = design_cluster_sizes(d);
    const std::uint64_t xseed = power_wild_seed(seed, power_group_key("design-x", design_draw_key(d, m)), 0.0, 0);
    const std::int32_t G = d.clusters, T = d.periods;
    const std::size_t n = static_cast<std::size_t>(d.obs) * static_cast<std::size_t>(T);
    DesignLayout L;  // rows by cluster, individual, period
    L.n_cells = G * T;
    L.cell.resize(n);
    std::size_t row = 0;
    std::int64_t id = id0;
    for (std::int32_t g = 0; g < G; ++g)
      for (std::int64_t j = 0; j < sizes[static_cast<std::size_t>(g)]; ++j, ++id) {
        std::vector<std::int32_t> rows_of(static_cast<std::size_t>(T));
        for (std::int32_t t = 0; t < T; ++t, ++row) {
          rows_of[static_cast<std::size_t>(t)] = static_cast<std::int32_t>(row);
          L.cell[row] = g * T + t;
          df.columns[0].num.push_back(static_cast<double>(block));
          df.columns[1].num.push_back(static_cast<double>(cluster0 + g + 1));
          df.columns[2].num.push_back(static_cast<double>(id + 1));
          df.columns[3].num.push_back(static_cast<double>(t + 1));
        }
        L.series.push_back(std::move(rows_of));
      }
    std::vector<double> x(n), y(n);
    correlated_regressor(L, T, d.rho_x, d.rho_x, xseed, 0, x.data());
    design_errors(d, L, xseed, 1, y.data());  // the calibration draw
    df.columns[4].num.insert(df.columns[4].num.end(), x.begin(), x.end());
    df.columns[5].num.insert(df.columns[5].num.end(), y.begin(), y.end());
    cluster0 += G;
    id0 = id;
  }
  df.row_line.resize(df.columns[0].num.size());
  std::iota(df.row_line.begin(), df.row_line.end(), 1u);
  return df;
}

}  // namespace panelboot
