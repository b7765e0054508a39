import math

import pytest

from experiments.stats import NO_INTERVAL, summarize, verdict, verdict_not_worse_than_curve, welch_ci


def test_summary_matches_textbook_values():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s.mean == 2.5 and s.n == 4 and s.std == pytest.approx(math.sqrt(5 / 3))


def test_welch_interval_matches_scipy_ttest():
    from scipy import stats

    a, b = [91.2, 91.5, 91.0, 91.4], [90.1, 90.6, 90.2]
    diff, lo, hi = welch_ci(a, b)
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert diff == pytest.approx(sum(a) / 4 - sum(b) / 3)
    assert (lo, hi) == pytest.approx((ci.low, ci.high))


def test_verdicts_follow_the_stated_rule():
    assert verdict([92.0, 92.1, 92.2], [90.0, 90.1, 90.2])["verdict"] == "reproduced"
    assert verdict([90.0, 90.1, 90.2], [92.0, 92.1, 92.2])["verdict"] == "not reproduced"
    assert verdict([91.0, 92.0, 90.5], [91.2, 91.0, 91.9])["verdict"] == "inconclusive"
    assert verdict([92.0], [90.0, 90.2])["verdict"] == NO_INTERVAL  # one seed is never a result
    # lower-is-better metrics flip the direction
    assert verdict([5.0, 5.1, 5.2], [7.0, 7.1, 7.2], higher_is_better=False)["verdict"] == "reproduced"


def test_gap_growth_is_the_interaction_contrast_with_welch_satterthwaite_dof():
    from scipy import stats

    from experiments.stats import verdict_gap_grows

    a1, b1 = [90.0, 91.0, 92.0], [89.0, 90.0, 91.0]  # gap 1 at depth 1
    a2, b2 = [94.0, 95.0, 96.0], [89.0, 90.0, 91.0]  # gap 5 at depth 2
    v = verdict_gap_grows(a1, b1, a2, b2)
    # four groups with equal variance s^2 = 1 and n = 3: se = sqrt(4 / 3), dof = 4 (n - 1) = 8
    half = stats.t.ppf(0.975, 8) * math.sqrt(4 / 3)
    assert v["diff"] == pytest.approx(4.0) and (v["ci_low"], v["ci_high"]) == pytest.approx((4 - half, 4 + half))
    assert v["verdict"] == "reproduced"
    assert verdict_gap_grows(a2, b2, a1, b1)["verdict"] == "not reproduced"  # the gap shrinks
    assert verdict_gap_grows(a1, b1, a1, b1)["verdict"] == "inconclusive"  # the same gap


def test_not_worse_uses_the_margin():
    from experiments.stats import verdict_not_worse

    same = [90.0, 90.2, 90.1]
    assert verdict_not_worse([89.9, 90.1, 90.0], same, margin=1.0)["verdict"] == "reproduced"  # within 1 pp
    assert verdict_not_worse([87.0, 87.2, 87.1], same, margin=1.0)["verdict"] == "not reproduced"  # 3 pp worse
    # 2.4 pp worse with a wide interval that touches 0: not shown either way
    assert verdict_not_worse([59.0, 61.0, 57.5], [61.9, 62.7, 61.5], margin=1.0)["verdict"] == "inconclusive"


def test_not_worse_than_an_interpolated_curve():
    a, b1, b2 = [90.0, 90.2, 89.8], [88.0, 88.2, 87.8], [92.0, 92.2, 91.8]
    v = verdict_not_worse_than_curve(a, b1, b2, w=0.5, margin=1.0)
    assert v["diff"] == pytest.approx(0.0) and v["verdict"] == "reproduced"  # on the curve
    worse = verdict_not_worse_than_curve([86.0, 86.2, 85.8], b1, b2, w=0.5, margin=1.0)
    assert worse["diff"] == pytest.approx(-4.0) and worse["verdict"] == "not reproduced"
    assert verdict_not_worse_than_curve([90.0], b1, b2, 0.5, 1.0)["verdict"] == NO_INTERVAL
