"""Statistics over seeds that a conclusion can rest on.

Each FreezeOut run is already a paired comparison: its measured speedup and relative error are
computed against the baseline of the *same seed* (``pairing.py``), so the per-seed values are
paired differences and the seed-to-seed variation of the baseline cancels out of them.

- **Intervals**: a percentile bootstrap of the mean of those per-seed values: ``RESAMPLES``
  resamples of the seeds with replacement, drawn from a generator seeded with ``SEED`` (the same
  numbers every time the analysis runs), the ``(1 - LEVEL) / 2`` and ``(1 + LEVEL) / 2``
  percentiles of the resampled means. With very few seeds a percentile bootstrap can only span
  the seeds' own range and covers less than it says (three seeds: at most min..max); the report
  says so.
- **Seeds needed**: the standard sample size of a two-sided paired t-test (one-sample t-test on
  the per-seed differences), exact through the noncentral t distribution: the smallest n whose
  power to detect a mean difference of ``DELTA`` (3 points) at level ``ALPHA`` is ``POWER``,
  with the spread set to the sample standard deviation measured over the seeds.
- **The paper's region** (up to 20% speedup within 3% relative error, Brock et al. 2017): a
  method is *inside* only when its whole interval box (speedup x relative error) lies in the
  region; *outside* when it surely costs more than 3% or is surely slower than the baseline;
  *beyond* when it is surely within 3% and surely faster than 20% (better than the claim);
  *undecided* otherwise (the box straddles an edge). No verdict at all (``region_note`` says
  why) when a baseline of the group looks as if it never learned (``freezeout.rundir.sanity``):
  against a baseline at chance, a relative error near 0 means nothing.
"""
from __future__ import annotations

import math
import warnings
from statistics import NormalDist
from typing import Any, Iterable

import numpy as np

RESAMPLES = 10_000  # bootstrap resamples of the seeds
LEVEL = 0.95  # confidence level of the intervals
SEED = 0  # the bootstrap's generator seed: the analysis gives the same intervals every time
DELTA = 0.03  # the difference to resolve: 3 points (of relative error, of speedup)
ALPHA = 0.05  # two-sided test level of the seeds-needed calculation
POWER = 0.8  # its power
MAX_SEEDS = 10_000  # the search for the seeds needed stops here ("more than" beyond)
PAPER_SPEEDUP, PAPER_ERROR = 0.20, 0.03  # the paper's region: speedup in [0, 20%], error <= 3%
INSIDE, OUTSIDE, BEYOND, UNDECIDED = "inside", "outside", "beyond", "undecided"


def finite(values: Iterable[Any]) -> list[float]:
    """The values that are numbers (None, NaN and text dropped)."""
    return [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)
            and not math.isnan(v)]


def bootstrap_ci(values: Iterable[Any], level: float = LEVEL, resamples: int = RESAMPLES,
                 seed: int = SEED) -> tuple[float, float]:
    """Percentile bootstrap interval ``(lo, hi)`` of the mean of ``values`` (NaNs dropped); NaNs
    with fewer than two values, where no interval exists."""
    v = np.asarray(finite(values))
    if len(v) < 2:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1)
    lo, hi = np.percentile(means, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def paired_differences(a: dict[Any, float], b: dict[Any, float]) -> list[float]:
    """``a[seed] - b[seed]`` for every seed both have a number for, by seed: the paired
    differences between two methods (e.g. two rivals' relative errors)."""
    return [a[s] - b[s] for s in sorted(set(a) & set(b), key=str) if len(finite([a[s], b[s]])) == 2]


def paired_t_power(n: int, std: float, delta: float = DELTA, alpha: float = ALPHA) -> float:
    """Power of a two-sided paired t-test with ``n`` pairs whose differences spread by ``std`` to
    detect a mean difference ``delta``."""
    from scipy import stats as st  # only here: the rest of the analysis needs no scipy (seeds_needed)

    df = n - 1
    crit = st.t.ppf(1 - alpha / 2, df)
    shift = delta / std * math.sqrt(n)
    return float(st.nct.sf(crit, df, shift) + st.nct.cdf(-crit, df, shift))


def seeds_needed(std: float, delta: float = DELTA, alpha: float = ALPHA, power: float = POWER) -> float:
    """Seeds a paired t-test needs to resolve ``delta`` at spread ``std`` (see the module doc):
    2 for no spread, NaN where the spread is unknown (fewer than two seeds), ``inf`` past
    ``MAX_SEEDS``."""
    if not finite([std]):
        return math.nan
    if std == 0:
        return 2.0
    # The normal approximation's n is a lower bound for the t-test's: start there, walk up.
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    n = max(2, math.floor((z * std / delta) ** 2))
    try:
        import scipy  # noqa: F401 - the noncentral t of paired_t_power
    except ImportError:  # an optional extra: the rest of the report stands without it
        warnings.warn("seeds needed not computed: it needs scipy: pip install 'freezeout[stats]'", stacklevel=2)
        return math.nan
    while n <= MAX_SEEDS:
        if paired_t_power(n, std, delta, alpha) >= power:
            return float(n)
        n += 1
    return math.inf


def region_verdict(speedup_ci: tuple[float, float], error_ci: tuple[float, float]) -> str:
    """``inside`` / ``outside`` / ``beyond`` / ``undecided`` for the interval box against the
    paper's region (speedup 0-20%, relative error <= 3%; see the module doc); an empty string
    where an interval is missing."""
    (s_lo, s_hi), (e_lo, e_hi) = speedup_ci, error_ci
    if len(finite([s_lo, s_hi, e_lo, e_hi])) < 4:
        return ""
    if e_lo > PAPER_ERROR or s_hi < 0:
        return OUTSIDE
    if e_hi <= PAPER_ERROR and s_lo >= 0:
        return INSIDE if s_hi <= PAPER_SPEEDUP else BEYOND if s_lo > PAPER_SPEEDUP else UNDECIDED
    return UNDECIDED


def interval_columns(used: list[dict]) -> dict[str, Any]:
    """The interval columns of one aggregation group from its runs (one per seed): for measured
    speedup and relative error ``*_lo``/``*_hi`` and ``*_seeds_needed``; ``paper_region`` and
    ``region_note`` (why there is no verdict, or empty)."""
    row: dict[str, Any] = {}
    for name in ("measured_speedup", "relative_error"):
        values = finite(r.get(name) for r in used)
        row[f"{name}_lo"], row[f"{name}_hi"] = bootstrap_ci(values)
        std = float(np.std(values, ddof=1)) if len(values) >= 2 else math.nan
        row[f"{name}_seeds_needed"] = seeds_needed(std)
    row["paper_region"] = region_verdict((row["measured_speedup_lo"], row["measured_speedup_hi"]),
                                         (row["relative_error_lo"], row["relative_error_hi"]))
    at_chance = sorted({str(r.get("baseline_dir")) for r in used if r.get("baseline_sanity")})
    row["region_note"] = ""
    if at_chance:
        row["paper_region"] = ""
        row["region_note"] = (f"no verdict: baseline {', '.join(at_chance)} at chance (it never learned: "
                              "tune optimizer.lr first)")
    return row
