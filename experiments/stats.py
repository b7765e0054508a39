"""Statistics for verdicts: per-variant summaries and Welch confidence intervals of differences.

Verdict rule (stated once, used by every trained claim): compare the claimed-better variant A with
the baseline B on a metric over independent seeds. Let d = mean(A) - mean(B) in the claimed
direction, with a two-sided 95% Welch t interval.
- ``reproduced``: the interval lies entirely on the claimed side of 0;
- ``not reproduced``: the interval lies entirely on the other side (the opposite holds);
- ``inconclusive``: the interval contains 0 (or n < 2 for either side).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as st


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


def welch_ci(a: list[float], b: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean(a) - mean(b), lower, upper) with a Welch t interval; NaN bounds if n < 2 on a side."""
    sa, sb = summarize(a), summarize(b)
    diff = sa.mean - sb.mean
    if sa.n < 2 or sb.n < 2:
        return diff, float("nan"), float("nan")
    va, vb = sa.std**2 / sa.n, sb.std**2 / sb.n
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    dof = (va + vb) ** 2 / ((va**2 / (sa.n - 1)) + (vb**2 / (sb.n - 1)))
    t = st.t.ppf(0.5 + level / 2, dof)
    return diff, diff - t * se, diff + t * se


def verdict(better: list[float], baseline: list[float], higher_is_better: bool = True) -> dict:
    """Apply the rule above; returns the difference, its interval and the verdict."""
    diff, lo, hi = welch_ci(better, baseline)
    if not higher_is_better:
        diff, lo, hi = -diff, -hi, -lo
    if math.isnan(lo):
        v = "inconclusive"
    elif lo > 0:
        v = "reproduced"
    elif hi < 0:
        v = "not reproduced"
    else:
        v = "inconclusive"
    return {"diff": diff, "ci_low": lo, "ci_high": hi, "verdict": v, "n_a": len(better), "n_b": len(baseline)}
