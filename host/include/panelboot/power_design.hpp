#pragma once
// Synthetic designs for `panelboot power --design` (docs/POWER.md, "Synthetic designs"): a panel
// of G clusters x T periods whose `obs` individuals per period are shared among the clusters by
// `sizes`, each individual observed every period; the model y = beta x + cluster FE + period FE
// + u, clustered by cluster.
//
//   x_gjt = sqrt(rho_x) a_gt + sqrt(1 - rho_x) z_gjt       a, z: stationary AR(1)(rho_x), N(0, 1)
//   u_gjt = sqrt(1 - lambda) e_gjt + sqrt(lambda) s_gt     e, s: stationary AR(1)(rho_u), N(0, 1)
//
// so corr(x_gjt, x_gkt) = rho_x (within a cluster and period), corr(x_gjt, x_gj,t-1) = rho_x,
// corr(u_gjt, u_gj,t-1) = rho_u, and the cluster-period shock s (shocks=cluster-period; lambda =
// shock_share, 0 without shocks) is a within-cluster correlation that the FE do not absorb. x is
// drawn once per (--seed, design): the study is conditional on that draw, as on data.
#include <cstdint>
#include <string>
#include <vector>

#include "panelboot/data_frame.hpp"

namespace panelboot {

struct SyntheticDesign {
  std::int32_t clusters = 0;         // G, 3 .. 10^6
  std::int32_t periods = 10;         // T, 2 .. 10^5
  std::int64_t obs = 0;              // individuals per period (default 10 G)
  std::vector<double> shares;        // per cluster, summing to 1 (sizes=; equal by default)
  std::string sizes = "equal";       // as given (normalized)
  double rho_x = 0, rho_u = 0;       // rho_x in [0, 1), rho_u in (-1, 1)
  bool shocks = false;               // shocks=cluster-period
  double shock_share = 0.5;          // lambda: the shock's share of the error variance, [0, 1]
  std::int32_t xdraws = 1;           // draws of x, --R shared evenly among them (1: x fixed)
  std::string text;                  // the normalized specification (every key, fixed order)
};

// "clusters=8,periods=12,obs=96,sizes=0.4:rest,rho_x=0.7,rho_u=0.7,shocks=cluster-period".
// Keys: clusters (required), periods, obs, sizes ("equal"; shares separated by ':', the last
// item may be "rest": what remains, spread evenly over the remaining clusters), rho_x, rho_u,
// shocks (none | cluster-period), shock_share. InvalidInput naming the key on anything else.
SyntheticDesign parse_design(const std::string& spec);

// The key of x draw m (0-based) of a design: its text, and text + "#x<m>" for m > 0 (so a
// design's first draw is the same with or without xdraws).
std::string design_draw_key(const SyntheticDesign& d, std::int32_t m);

// The individuals of each cluster (per period): shares x obs rounded by largest remainder (ties
// to the earlier cluster), so they sum to obs; InvalidInput when a cluster would get none.
std::vector<std::int64_t> design_cluster_sizes(const SyntheticDesign& d);

// The designs stacked into one data set with columns design (1 .. the number of x draws of all
// designs: design d's draws in order, then d + 1's), cluster, id, period, x and y (y: one draw of
// the errors, the calibration draw); rows by block, cluster, individual, period. Cluster and
// individual ids are unique across blocks. A block's x and y depend only on (seed, the design's
// text, the draw), not on the other designs listed.
DataFrame synthetic_panel(const std::vector<SyntheticDesign>& designs, std::uint64_t seed, std::uint64_t max_memory);

// The rows of a design's data that its errors run over: each individual's rows in period order
// and each row's cluster-period cell (cluster code x T + period code).
struct DesignLayout {
  std::vector<std::vector<std::int32_t>> series;
  std::vector<std::int32_t> cell;
  std::int32_t n_cells = 0;
};

// A regressor with within-cluster correlation icc and AR(1) coefficient rho over time, unit
// variance: x_i = sqrt(icc) a_cell(i) + sqrt(1 - icc) z_i, where a is one stationary AR(1) series
// per cluster over its `periods` cells (cells c T .. c T + T - 1) and z one per series of the
// layout (an individual's rows in time order), N(0, 1) draws of (seed, rep) at counters cell (a)
// and n_cells + row (z). --design's x (icc = rho = rho_x) and --placebo's regressor.
void correlated_regressor(const DesignLayout& layout, std::int32_t periods, double icc, double rho, std::uint64_t seed,
                          std::uint64_t rep, double* x);

// The errors u of one replication (`rep`, counter-based from `seed`) at the n rows of `layout`.
void design_errors(const SyntheticDesign& d, const DesignLayout& layout, std::uint64_t seed, std::uint64_t rep, double* u);

}  // namespace panelboot
