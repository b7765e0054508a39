"""Statistics for verdicts: per-variant summaries and Welch confidence intervals of differences.

Verdict rule (stated once, used by every trained claim): compare the claimed-better variant A with
the baseline B on a metric over independent seeds. Let d = mean(A) - mean(B) in the claimed
direction, with a two-sided 95% Welch t interval.
- ``reproduced``: the interval lies entirely on the claimed side of 0;
- ``not reproduced``: the interval lies entirely on the other side (the opposite holds);
- ``inconclusive``: the interval contains 0.
With n < ``MIN_N`` (2) on a side there is no interval and no verdict (``NO_INTERVAL``); the trained
probes' own rules (drift, erosion) ask the same n of each kind.

Claims of the form "A reaches B" (not worse) use a non-inferiority margin m instead
(``verdict_not_worse``): ``reproduced`` if the lower bound of mean(A) - mean(B) is above -m,
``not reproduced`` if the whole interval is below 0 (and not within the margin), else ``inconclusive``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as st

MIN_N = 2  # runs per side that an interval, and so any trained verdict, needs


@dataclass
class Summary:
    mean: float
    std: float
    n: int

    def fmt(self, digits: int = 2) -> str:
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f} (n={self.n})"


def summarize(values: list[float]) -> Summary:
    n = len(values)
    mean = sum(values) / n if n else float("nan")
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else float("nan")
    return Summary(mean, std, n)


def contrast_ci(groups: list[list[float]], coefs: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(sum c_i mean_i, lower, upper): Welch-Satterthwaite t interval of a contrast of independent group means.

    ``welch_ci(a, b)`` is the contrast (+1, -1); the interaction (a2 - b2) - (a1 - b1) ("the gap grows")
    is (+1, -1, -1, +1). NaN bounds if any group has n < 2.
    """
    sums = [summarize(g) for g in groups]
    est = sum(c * s.mean for c, s in zip(coefs, sums))
    if any(s.n < MIN_N for s in sums):
        return est, float("nan"), float("nan")
    var = [c * c * s.std**2 / s.n for c, s in zip(coefs, sums)]
    se = math.sqrt(sum(var))
    if se == 0:
        return est, est, est
    dof = sum(var) ** 2 / sum(v * v / (s.n - 1) for v, s in zip(var, sums))
    t = st.t.ppf(0.5 + level / 2, dof)
    return est, est - t * se, est + t * se


def welch_ci(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) - mean(b), lower, upper) with a Welch t interval; NaN bounds if n < 2 on a side."""
    return contrast_ci([a, b], [1.0, -1.0], level)


VERDICTS = ("reproduced", "not reproduced", "inconclusive")
NO_INTERVAL = f"no verdict: n < {MIN_N} on a side, no interval"


def _rule(lo: float, hi: float) -> str:
    if math.isnan(lo):
        return NO_INTERVAL
    return "reproduced" if lo > 0 else "not reproduced" if hi < 0 else "inconclusive"


def _not_worse_rule(lo: float, hi: float, margin: float) -> str:
    if math.isnan(lo):
        return NO_INTERVAL
    return "reproduced" if lo > -margin else "not reproduced" if hi < 0 else "inconclusive"


def verdict(better: list[float], baseline: list[float], higher_is_better: bool = True, level: float = 0.95) -> dict:
    """Apply the rule above; returns the difference, its interval and the verdict. ``level``: a wider interval
    where the comparison was picked from several (Bonferroni: ``1 - 0.05 / comparisons``)."""
    diff, lo, hi = welch_ci(better, baseline, level)
    if not higher_is_better:
        diff, lo, hi = -diff, -hi, -lo
    v = _rule(lo, hi)
    return {"diff": diff, "ci_low": lo, "ci_high": hi, "verdict": v, "n_a": len(better), "n_b": len(baseline)}


def verdict_gap_grows(a1: list[float], b1: list[float], a2: list[float], b2: list[float]) -> dict:
    """The same rule on the interaction (mean(a2) - mean(b2)) - (mean(a1) - mean(b1)): the gain of A over B
    is larger in setting 2 (e.g. a deeper net) than in setting 1."""
    diff, lo, hi = contrast_ci([a2, b2, a1, b1], [1.0, -1.0, -1.0, 1.0])
    return {"diff": diff, "ci_low": lo, "ci_high": hi, "verdict": _rule(lo, hi),
            "n_a": min(len(a1), len(a2)), "n_b": min(len(b1), len(b2))}


def verdict_not_worse(a: list[float], b: list[float], margin: float) -> dict:
    """Non-inferiority of A to B with ``margin`` (same units as the metric, higher is better)."""
    diff, lo, hi = welch_ci(a, b)
    return {"diff": diff, "ci_low": lo, "ci_high": hi, "verdict": _not_worse_rule(lo, hi, margin),
            "n_a": len(a), "n_b": len(b)}


def verdict_not_worse_than_curve(a: list[float], b1: list[float], b2: list[float], w: float, margin: float) -> dict:
    """Non-inferiority of A to the interpolation ``w * mean(b1) + (1 - w) * mean(b2)`` of a curve
    (e.g. C3's accuracy at C2sp-56's params, interpolated in log-params between two depths)."""
    diff, lo, hi = contrast_ci([a, b1, b2], [1.0, -w, -(1.0 - w)])
    return {"diff": diff, "ci_low": lo, "ci_high": hi, "verdict": _not_worse_rule(lo, hi, margin),
            "n_a": len(a), "n_b": min(len(b1), len(b2))}
