# iv_aer.R -- golden references for 2SLS (IV) in panelboot.
#
# Fits 2SLS with AER::ivreg on cigar_fem.csv and empluk_fem.csv, fixed effects as explicit
# dummies (factor(State) + factor(Year), factor(Firm) + factor(Year)) in both the regressor and
# the instrument parts, exogenous regressors also in both parts, and prints coefficients and
# standard errors (15 significant digits) under these covariance estimators:
#   iid  vcov(m)                                       sigma^2 = RSS/(N-K), K counts every dummy
#   hc1  sandwich::vcovHC(m, type = "HC1")             N/(N-K)
#   cl1  sandwich::vcovCL(m, cluster = ~State, type = "HC1")   G/(G-1) * (N-1)/(N-K)
#   cl2  sandwich::vcovCL(m, cluster = ~State + Year, type = "HC1")   (two-way, CGM 2011)
#   cl2min  same two-way variance, but with the single factor min(G1,G2)/(min(G1,G2)-1) (see below)
#
# Two-way factor (sandwich 3.0.2, meatCL with the defaults cadjust = TRUE, multi0 = FALSE):
#   V = (N-1)/(N-K) * B [ G1/(G1-1) M1 + G2/(G2-1) M2 - G12/(G12-1) M12 ] B
# i.e. EACH term gets ITS OWN G_j/(G_j-1), the intersection term included (G12 = number of
# non-empty State x Year cells; = N for the balanced cigar panel, one row per cell), and the
# whole is multiplied once by (N-1)/(N-K). Equivalently cl2 = cl1(State) + cl1(Year) - cl1(State x Year),
# three one-way HC1 vcovCL calls; the script checks this numerically (stop() if not equal).
# multi0 = TRUE would instead subtract the HC0 matrix (no factor) as the last term; not used here.
# cl2min (not a sandwich default; for the "min" convention): vcovCL(..., cadjust = FALSE) times
#   Gmin/(Gmin-1), i.e. (N-1)/(N-K) * Gmin/(Gmin-1) * B [M1 + M2 - M12] B.
#
# Output lines (space separated):
#   <model> <vcov> <coef> <estimate> <std_error>
#   <model> nobs <N>
#   <model> nclust <cluster var> <G>          (cluster var State x Year / Firm x Year = intersection)
#   <model> first_cl1 <instrument> <estimate> <std_error>   first stage lm, vcovCL HC1 by State
# Lines starting with # are comments (versions, checks).
# Accuracy: the dummy-variable fit carries rounding error; the estimates agree with an exact
# within-transform 2SLS to about 1e-11 relative (c1, c2, c3, e1), so compare at rel. tol ~1e-9.
#
# Rerun:  cd tests/data && Rscript iv_aer.R > iv_aer.out
suppressMessages({ library(AER); library(sandwich) })
cat(sprintf("# R %s AER %s sandwich %s\n", getRversion(), packageVersion("AER"),
            packageVersion("sandwich")))

cig <- read.csv("cigar_fem.csv")
emp <- read.csv("empluk_fem.csv")
f15 <- function(x) sprintf("%.15g", x)
ln <- function(...) cat(paste(...), "\n", sep = "")   # one space-separated line

out <- function(id, vid, m, V, keep) {
  b <- coef(m)[keep]; se <- sqrt(diag(V)[keep])
  for (j in seq_along(keep)) ln(id, vid, keep[j], f15(b[j]), f15(se[j]))
}

run <- function(id, fml, data, cl, slopes, twoway = TRUE, weights = NULL, first = NULL) {
  environment(fml) <- environment()   # so that data, w and cluster formulas resolve here
  w <- if (is.null(weights)) NULL else data[[weights]]
  m <- ivreg(fml, data = data, weights = w)   # weighted 2SLS when w is given
  ln(id, "nobs", nobs(m))
  out(id, "iid", m, vcov(m), slopes)
  out(id, "hc1", m, vcovHC(m, type = "HC1"), slopes)
  if (is.null(cl)) return(invisible(m))
  g1 <- data[[cl[1]]]; g2 <- data[[cl[2]]]; g12 <- interaction(g1, g2, drop = TRUE)
  f1c <- as.formula(paste("~", cl[1])); f2c <- as.formula(paste("~", cl[1], "+", cl[2]))
  ln(id, "nclust", cl[1], length(unique(g1)))
  out(id, "cl1", m, vcovCL(m, cluster = f1c, type = "HC1"), slopes)
  if (twoway) {
    ln(id, "nclust", cl[2], length(unique(g2)))
    ln(id, "nclust", paste0(cl[1], "x", cl[2]), nlevels(g12))
    V2 <- vcovCL(m, cluster = f2c, type = "HC1")
    # by hand: three one-way HC1 calls, each with its own G/(G-1)
    Vh <- vcovCL(m, cluster = g1, type = "HC1") + vcovCL(m, cluster = g2, type = "HC1") -
          vcovCL(m, cluster = g12, type = "HC1")
    rel <- max(abs(V2 - Vh)[slopes, slopes]) / max(abs(V2[slopes, slopes]))
    if (rel > 1e-8) stop("two-way check failed for ", id)
    cat(sprintf("# %s cl2 = cl1(%s) + cl1(%s) - cl1(%sx%s): max rel diff %.3g\n",
                id, cl[1], cl[2], cl[1], cl[2], rel))
    out(id, "cl2", m, V2, slopes)
    G <- min(length(unique(g1)), length(unique(g2)))
    Vmin <- vcovCL(m, cluster = f2c, type = "HC1", cadjust = FALSE) * G / (G - 1)
    out(id, "cl2min", m, Vmin, slopes)
  }
  if (!is.null(first)) {   # first stage: lm of the endogenous on all instruments
    environment(first) <- environment()
    f1 <- lm(first, data = data)
    V1 <- vcovCL(f1, cluster = f1c, type = "HC1")
    ins <- intersect(c("log(Pimin)", "log(Pop16)"), names(coef(f1)))   # excluded instruments
    for (v in ins) ln(id, "first_cl1", v, f15(coef(f1)[v]), f15(sqrt(V1[v, v])))
  }
  invisible(m)
}

fe <- "factor(State) + factor(Year)"
iv <- function(s) as.formula(s)
pr <- c("log(Price)", "log(NDI)")
cs <- c("State", "Year")

run("c1", iv(paste("log(Sales) ~ log(Price) + log(NDI) +", fe, "| log(Pimin) + log(NDI) +", fe)),
    cig, cs, pr,
    first = iv(paste("log(Price) ~ log(Pimin) + log(NDI) +", fe)))
run("c2", iv(paste("log(Sales) ~ log(Price) + log(NDI) +", fe,
                   "| log(Pimin) + log(Pop16) + log(NDI) +", fe)),
    cig, cs, pr,
    first = iv(paste("log(Price) ~ log(Pimin) + log(Pop16) + log(NDI) +", fe)))
run("c3", iv(paste("log(Sales) ~ log(Price) + log(NDI) +", fe,
                   "| log(Pimin) + log(Pop16) + log(NDI) +", fe)),
    cig, cs, pr, weights = "Pop")
run("c4", log(Sales) ~ log(Price) + log(NDI) | log(Pimin) + log(Pop16) + log(NDI),
    cig, cs, c("(Intercept)", pr), twoway = FALSE)
run("c5", iv(paste("log(Sales) ~ log(Price) + log(NDI) +", fe,
                   "| log(Pimin) + log(Pop16) + log(Pop) +", fe)),
    cig, cs, pr, twoway = FALSE)
run("e1", log(Emp) ~ log(Wage) + log(Capital) + factor(Firm) + factor(Year) |
          log(Output) + log(Capital) + factor(Firm) + factor(Year),
    emp, c("Firm", "Year"), c("log(Wage)", "log(Capital)"))
