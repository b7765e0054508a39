"""Per-claim tables and verdicts of the trained claims (the rule itself is in ``experiments.stats``).

Each claim function takes the ok rows of one (experiment, profile) and the claim's entry of
``experiments/claims.yaml`` and returns ``(table, verdicts, facts)``:
- ``verdicts``: claims tested by the stated rule over seeds: reproduced / not reproduced / inconclusive,
  or "no verdict: <why>" (one seed, or a net at chance level);
- ``facts``: what holds by construction or is measured once (params, MACs, their ratios, saved
  activations): a measured value, never a verdict.
"""
from __future__ import annotations

import math
import re
from collections import defaultdict
from typing import Any

from experiments.stats import (summarize, verdict, verdict_gap_grows, verdict_not_worse,
                               verdict_not_worse_than_curve)
from models.layers import SPATIAL_KINDS

NOT_WORSE_MARGIN = 1.0       # pp of test accuracy: "C2sp reaches C3" = at most 1 pp worse (95% interval)
FEWER_PARAMS = (0.5, 0.7)    # "30-50% fewer params": the params ratio of the C2sp and C3 nets compared
CHANCE_MARGIN = 5.0          # pp above chance (100 / classes) below which a net gets no verdict
BASELINES = {"rednet26": "bottleneck26", "rednet38": "bottleneck38"}  # RedNet -> its ResNet (same layout)
EVEN_KINDS = SPATIAL_KINDS  # the layer factory owns the conv kinds
CEILING_NET = ("resnet20", "c3")  # the net whose ceiling the standard profile is measured against
CEILING_EXPERIMENT = "ceiling"  # the experiment_name its ceiling runs are recorded under (configs/grid/ceiling.yaml)
CEILING_GAP = 1.5            # pp: the standard profile should come within this of the ceiling (issue 12)
PAPER_EPOCHS = 300           # the papers' CIFAR schedule [PAPERS.md 1.4]
EPOCH_BUDGET = PAPER_EPOCHS // 10  # issue 12: the standard profile gets at most 1/10 of it
TIME_AIM_MIN = 15            # issue 12: minutes to that accuracy for ResNet-20 on the 2-core CPU (an aim)


def group(rows, keys: tuple[str, ...]) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in rows:
        groups[tuple(r.get(k) for k in keys)].append(r)
    return dict(sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])))


def values(rows, metric) -> list[float]:
    return [float(r[metric]) for r in rows if isinstance(r.get(metric), (int, float)) and not math.isnan(r[metric])]


HARDWARE_BOUND = ("step_img_s",)  # metrics whose value is the hardware's: never averaged across machines


def summary_table(rows, keys: tuple[str, ...], metrics: tuple[str, ...]) -> list[dict]:
    """One row per cell: mean and std of each metric, n, params, MACs. A ``HARDWARE_BOUND`` metric is summarized
    over the runs of one hardware only (the one with the most runs that measured it, ``speed_hardware``), named
    with its n."""
    table = []
    for key, cell in group(rows, keys).items():
        row = dict(zip(keys, key))
        for m in metrics:
            runs, where = cell, {}
            if m in HARDWARE_BOUND:
                by_hw = by_speed_hardware([r for r in cell if values([r], m)]) or {"none": []}
                hw = max(sorted(by_hw), key=lambda h: len(by_hw[h]))
                runs, where = by_hw[hw], {f"{m}_hardware": hw, f"{m}_n": len(by_hw[hw])}
            s = summarize(values(runs, m))
            row.update({f"{m}_mean": s.mean, f"{m}_std": s.std, **where})
        row.update({"n": len(cell), "params": cell[0].get("params"), "macs": cell[0].get("macs")})
        table.append(row)
    return table


def _at_chance(rows) -> float | None:
    """The mean test accuracy of a cell within CHANCE_MARGIN of chance, else None."""
    acc = values(rows, "test_acc")
    classes = rows[0].get("num_classes") or 10
    mean = sum(acc) / len(acc) if acc else float("nan")
    return mean if acc and mean <= 100 / classes + CHANCE_MARGIN else None


def tested(claim: str, better, base, metric: str, rule=verdict, **extra) -> dict[str, Any]:
    """One verdict row: ``rule`` on ``metric`` over seeds, unless a net is at chance level."""
    chance = [a for a in (_at_chance(better), _at_chance(base)) if a is not None]
    if chance:
        return no_verdict(claim, metric, better, base, f"a net at chance level ({min(chance):.1f} % test accuracy)",
                          **extra)
    return {"claim": claim, "metric": metric, **extra, **rule(values(better, metric), values(base, metric))}


def no_verdict(claim: str, metric: str, better, base, why: str, **extra) -> dict[str, Any]:
    """A verdict row that tests nothing, and says why."""
    return {"claim": claim, "metric": metric, **extra, "diff": float("nan"), "ci_low": float("nan"),
            "ci_high": float("nan"), "n_a": len(better), "n_b": len(base), "verdict": f"no verdict: {why}"}


def speed_hardware(hardware: str) -> str:
    """What sets a record's img/s, from its hardware string (``engine.provenance.hardware``: "<CPU> (<n> cores),
    <t> thread(s)[, <GPU>]"): the GPU if there is one, else the CPU and its thread count ("1 threads" and
    "1 thread(s)" are one format, older and newer)."""
    parts = [p.strip() for p in str(hardware).split(",")]
    if len(parts) > 2:
        return ", ".join(parts[2:])
    threads = re.search(r"(\d+) thread", str(hardware))
    return f"{parts[0]}, {threads[1]} thread(s)" if threads and len(parts) == 2 else parts[0]


def by_speed_hardware(rows) -> dict[str, list[dict]]:
    """``rows`` grouped by the hardware that sets their img/s (``speed_hardware``)."""
    out: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        out[speed_hardware(r.get("hardware") or "unknown hardware")].append(r)
    return out


def same_hardware(cell, base) -> tuple[str | None, list[dict], list[dict]]:
    """The runs of ``cell`` and ``base`` measured on one kind of hardware (img/s compares only there).

    Records of one cell can come from a CPU and a GPU (a grid accumulates across machines); the hardware
    with the most paired runs (min of the two n) is kept, ties to the more runs in all. None when the two
    cells share no hardware."""
    a, b = by_speed_hardware(cell), by_speed_hardware(base)
    common = sorted(hw for hw in a if hw in b)
    if not common:
        return None, [], []
    hw = max(common, key=lambda h: (min(len(a[h]), len(b[h])), len(a[h]) + len(b[h])))
    return hw, a[hw], b[hw]


def tested_speed(claim: str, cell, base, metric: str = "step_img_s") -> dict[str, Any]:
    """A throughput verdict, over the runs of one hardware only (named in the claim)."""
    hw, a, b = same_hardware(cell, base)
    if hw is None:
        return no_verdict(claim, metric, cell, base, "the two cells were measured on different hardware")
    return tested(f"{claim} on {hw}", a, b, metric)


def mean_ratio(cell, base, metric: str) -> float:
    """mean(cell) / mean(base) of a measured metric (img/s, saved activations)."""
    return summarize(values(cell, metric)).mean / summarize(values(base, metric)).mean


def fact(claim: str, metric: str, measured: float, expected: float | None = None) -> dict[str, Any]:
    return {"claim": claim, "metric": metric, "measured": measured,
            "expected": float("nan") if expected is None else expected}


# ---------------------------------------------------------------- claim 000: even kernels
def even_kernels(rows, claim: dict) -> tuple[list[dict], list[dict], list[dict]]:
    table = summary_table(rows, ("model", "conv"), ("test_acc",))
    paper = claim.get("paper_err", {})
    for r in table:
        r["test_err_mean"], r["test_err_std"] = 100 - r.pop("test_acc_mean"), r.pop("test_acc_std")
        r["paper_err"] = paper.get(r["model"], {}).get(r["conv"], float("nan"))
    by = group(rows, ("model", "conv"))
    models = sorted({m for m, _ in by}, key=lambda m: min(c[0]["params"] for (mm, _), c in by.items() if mm == m))
    verdicts = []
    for m in models:
        for a, b, what in (("c2sp", "c2", "C2sp beats C2 at equal params and MACs"), ("c3", "c2", "C3 beats C2"),
                           ("c4sp", "c4", "C4sp beats C4")):
            if (m, a) in by and (m, b) in by:
                verdicts.append(tested(f"{m}: {what}", by[(m, a)], by[(m, b)], "test_acc", model=m))
    return table, verdicts + _gap_grows(by, models) + _params_axis(by, models), []


def _gap_grows(by, models) -> list[dict]:
    both = [m for m in models if (m, "c2sp") in by and (m, "c2") in by]
    out = []
    for m1, m2 in zip(both, both[1:]):
        cells = [by[(m, c)] for m in (m1, m2) for c in ("c2sp", "c2")]
        out.append(tested(f"C2sp's gain over C2 grows from {m1} to {m2}", cells[0] + cells[2], cells[1] + cells[3],
                          "test_acc", rule=lambda *_, **__: verdict_gap_grows(
                              *(values(c, "test_acc") for c in cells)), model=f"{m1} -> {m2}"))
    return out


def _params_axis(by, models) -> list[dict]:
    """C2sp nets against C3 nets with 30-50% more params, and against C3's curve interpolated in log-params."""
    out, lo, hi = [], *FEWER_PARAMS
    c3 = sorted((by[(m, "c3")][0]["params"], m) for m in models if (m, "c3") in by)
    for a in [m for m in models if (m, "c2sp") in by]:
        cell, p = by[(a, "c2sp")], by[(a, "c2sp")][0]["params"]
        for pb, b in c3:
            if lo <= p / pb <= hi:
                out.append(tested(f"{a}-C2sp ({p / 1e6:.3f} M) reaches {b}-C3 ({pb / 1e6:.3f} M) (non-inferiority, "
                                  f"margin {NOT_WORSE_MARGIN} pp)", cell, by[(b, "c3")], "test_acc",
                                  rule=lambda x, y, **_: verdict_not_worse(x, y, NOT_WORSE_MARGIN), model=f"{a} vs {b}"))
        below, above = [c for c in c3 if c[0] <= p], [c for c in c3 if c[0] > p]
        if below and above:
            (p1, m1), (p2, m2) = below[-1], above[0]
            w = math.log(p2 / p) / math.log(p2 / p1)  # weight of the smaller net in log-params
            v = verdict_not_worse_than_curve(values(cell, "test_acc"), values(by[(m1, "c3")], "test_acc"),
                                             values(by[(m2, "c3")], "test_acc"), w, NOT_WORSE_MARGIN)
            out.append({"claim": f"{a}-C2sp ({p / 1e6:.3f} M) reaches C3's accuracy-vs-params curve at equal params "
                                 f"({m1}-C3 and {m2}-C3 interpolated in log-params, margin {NOT_WORSE_MARGIN} pp)",
                        "metric": "test_acc", "model": f"{a} vs C3 curve", **v})
    if not out:
        out.append({"claim": "C2sp reaches C3's error with 30-50% fewer params", "metric": "test_acc",
                    "verdict": "no verdict: needs C2sp and C3 nets at several depths"})
    return out


def ceiling_rows(standard, rows) -> list[dict]:
    """The ceiling runs for ``standard``'s ResNet-20 C3 among ``rows``: experiment ``CEILING_EXPERIMENT``, that net,
    the same dataset, the longest schedule."""
    ref = [r for r in standard or [] if (r["model"], r["conv"]) == CEILING_NET]
    same = [r for r in rows or [] if r["experiment"] == CEILING_EXPERIMENT and (r["model"], r["conv"]) == CEILING_NET
            and ref and r["dataset"] == ref[0]["dataset"]]
    longest = max((r["epochs"] for r in same), default=None)
    return [r for r in same if r["epochs"] == longest]


def ceiling_target(ceil: list[dict]) -> float:
    """The validation accuracy the standard profile should reach: the ceiling runs' mean minus ``CEILING_GAP``."""
    return summarize(values(ceil, "val_acc")).mean - CEILING_GAP


def time_to(history: list[dict], target: float) -> tuple[int, float] | None:
    """(the first epoch whose validation accuracy reaches ``target``, the training seconds until its end: the
    sum of the epochs' ``epoch_time_s``); None if no epoch does."""
    seconds = 0.0
    for h in history:
        seconds += h.get("epoch_time_s") or 0.0
        if h.get("val_acc") is not None and h["val_acc"] >= target:
            return h["epoch"], seconds
    return None


def ceiling_facts(standard, rows) -> list[dict]:
    """How far ResNet-20 C3 of the standard profile sits below the ceiling (the papers' schedule on the same
    data, among ``rows``), and how many epochs it needs to come within CEILING_GAP of it: measured, against the
    issue's target."""
    ceil, ref = ceiling_rows(standard, rows), [r for r in standard or [] if (r["model"], r["conv"]) == CEILING_NET]
    if not ceil:
        return []
    top, target = summarize(values(ceil, "test_acc")).mean, ceiling_target(ceil)
    ours = summarize(values(ref, "test_acc")).mean
    what = f"resnet20-C3 ({ref[0]['epochs']} epochs, n={len(ref)}) vs the ceiling ({ceil[0]['epochs']} epochs, n={len(ceil)})"
    facts = [fact(f"ceiling: resnet20-C3, papers' schedule, {ceil[0]['epochs']} epochs on {ceil[0]['dataset']} "
                  f"(n={len(ceil)}): test accuracy", "test_acc", top),
             fact(f"{what}: test-accuracy gap in pp (target: at most {CEILING_GAP})", "test_acc", top - ours, CEILING_GAP)]
    timed = [r for r in ref if r.get("history")]  # runs whose record holds the per-epoch history
    done = {id(r): t for r in timed if (t := time_to(r["history"], target)) is not None}
    reach = f"val accuracy >= ceiling's {target + CEILING_GAP:.2f} - {CEILING_GAP}"
    facts.append(fact(f"{what}: epochs until {reach} (mean over the {len(done)} of {len(timed)} runs with a history "
                      f"that reach it; target: at most {EPOCH_BUDGET}, 1/10 of the papers' {PAPER_EPOCHS})", "epochs",
                      sum(e for e, _ in done.values()) / len(done) if done else float("nan"), EPOCH_BUDGET))
    for hw, on_hw in group(timed, ("hardware",)).items():  # wall time is a property of the machine: one fact each
        mins = [done[id(r)][1] / 60 for r in on_hw if id(r) in done]
        facts.append(fact(f"{what}: training minutes until {reach} on {hw[0]} (mean over the {len(mins)} of "
                          f"{len(on_hw)} runs there that reach it; aim: at most {TIME_AIM_MIN} for ResNet-20 on the "
                          f"2-core CPU)", "train_min", sum(mins) / len(mins) if mins else float("nan"), TIME_AIM_MIN))
    return facts


# ---------------------------------------------------------------- claim 002: BlurPool
def blurpool(rows, claim: dict) -> tuple[list[dict], list[dict], list[dict]]:
    metrics = ("test_acc", "consistency_circular", "consistency_translate")
    table = summary_table(rows, ("model", "augment", "filt_size"), metrics)
    by = group(rows, ("model", "augment", "filt_size"))
    verdicts = []
    for (m, aug, f), cell in by.items():
        base = by.get((m, aug, 1))
        if f == 1 or base is None:
            continue
        for metric, what in (("consistency_circular", "raises consistency (circular shifts)"),
                             ("consistency_translate", "raises consistency (zero-padded translations)"),
                             ("test_acc", "raises accuracy")):
            verdicts.append(tested(f"{m} aug={aug}: BlurPool f={f} {what} vs f=1", cell, base, metric,
                                   model=m, augment=aug, filt_size=f))
    facts = [fact(f"{m} f={f}: params (blur filters are fixed buffers)", "params", cell[0]["params"])
             for (m, aug, f), cell in by.items() if aug == sorted({k[1] for k in by}, key=str)[0]]
    return table, verdicts, facts


# ---------------------------------------------------------------- claim 003: RedNet vs ResNet
def rednet(rows, claim: dict) -> tuple[list[dict], list[dict], list[dict]]:
    table = summary_table(rows, ("model", "kernel_size"), ("test_acc", "step_img_s", "saved_activation_mb"))
    by = group(rows, ("model", "kernel_size"))
    verdicts, facts = [], []
    for (m, k), cell in by.items():
        base = by.get((BASELINES.get(m), None))
        if k is None or base is None:
            continue
        for metric in ("params", "macs"):
            facts.append(fact(f"{m} K={k} / {BASELINES[m]}: {metric} ratio", metric, cell[0][metric] / base[0][metric]))
        mem = mean_ratio(cell, base, "saved_activation_mb")
        facts.append(fact(f"{m} K={k} / {BASELINES[m]}: saved-activation ratio (one step, measured, not tested)",
                          "saved activations", mem))
        verdicts.append(tested(f"{m} K={k} is more accurate than {BASELINES[m]}", cell, base, "test_acc"))
        verdicts.append(tested_speed(f"{m} K={k} trains faster (img/s) than {BASELINES[m]}", cell, base))
    return table, verdicts, facts


# ---------------------------------------------------------------- claim 001: octave
def octave(rows, claim: dict) -> tuple[list[dict], list[dict], list[dict]]:
    table = summary_table(rows, ("model", "alpha"), ("test_acc", "step_img_s", "saved_activation_mb"))
    by = group(rows, ("model", "alpha"))
    verdicts, facts = [], []
    for (m, a), cell in by.items():
        base = by.get((m, 0.0))
        if not a or base is None:
            continue
        mac = cell[0]["macs"] / base[0]["macs"]
        hw, cell_hw, base_hw = same_hardware(cell, base)
        speed = mean_ratio(cell_hw, base_hw, "step_img_s") if hw else float("nan")
        mem = mean_ratio(cell, base, "saved_activation_mb")
        facts += [fact(f"{m} alpha={a}: MAC ratio (theory: conv MACs only; measured: whole net)", "macs", mac,
                       1 - 1.5 * a + 0.75 * a * a),
                  fact(f"{m} alpha={a}: step-time ratio 1/(img/s ratio) vs the MAC ratio {mac:.3f} (measured"
                       f"{' on ' + hw if hw else ', no common hardware'})",
                       "step time", 1 / speed, mac),
                  fact(f"{m} alpha={a}: saved-activation ratio (theory: feature maps; measured: every tensor "
                       "autograd saves, one step; measured, not tested)", "saved activations", mem, 1 - 0.75 * a)]
        verdicts.append(tested_speed(f"{m} alpha={a} trains faster (img/s) than alpha=0", cell, base))
        verdicts.append(tested(f"{m} alpha={a} is more accurate than alpha=0", cell, base, "test_acc"))
    return table, verdicts, facts


# ---------------------------------------------------------------- the standard profile's recipe (not a paper claim)
RECIPE = ("lr", "weight_decay", "label_smoothing", "batch_size")  # the knobs recipe_tuning compares


def current_recipe(profile: str = "standard") -> dict[str, Any]:
    """The recipe knobs of ``profile`` as the committed configs compose it (``configs/``; a git-ignored
    ``configs/local`` override is left out). Inside a running Hydra app its config search path is used."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from experiments.runs import CONFIG_KEYS, ROOT

    overrides = [f"profile={profile}", "~local"]
    if GlobalHydra.instance().is_initialized():  # never clear a running app's Hydra
        cfg = compose("train", overrides=overrides)
    else:
        with initialize_config_dir(str(ROOT / "configs"), version_base=None):
            cfg = compose("train", overrides=overrides)
    return {k: OmegaConf.select(cfg, CONFIG_KEYS[k]) for k in RECIPE}


def recipe_tuning(rows, claim: dict, current: dict | None = None) -> tuple[list[dict], list[dict], list[dict]]:
    """Validation accuracy per recipe (the test split is shown, never used to select). One claim, whichever recipe
    leads: the best of the other recipes (by mean validation accuracy) beats the profile's current one. It is picked
    from k - 1 recipes, so its interval is Bonferroni-widened (level 1 - 0.05 / (k - 1)): reproduced = retune,
    not reproduced = the current recipe is better than every other one tried, inconclusive = no recipe shown better."""
    current = current_recipe(rows[0]["profile"]) if current is None else current
    table = sorted(summary_table(rows, ("model", *RECIPE), ("val_acc", "test_acc")),
                   key=lambda r: -r["val_acc_mean"] if r["val_acc_mean"] == r["val_acc_mean"] else math.inf)
    by = {k: cell for k, cell in group(rows, RECIPE).items() if values(cell, "val_acc")}
    now = tuple(current[k] for k in RECIPE)
    label = lambda k: ", ".join(f"{n}={v}" for n, v in zip(RECIPE, k))  # noqa: E731
    val = lambda k: summarize(values(by[k], "val_acc")).mean  # noqa: E731
    others = [k for k in by if k != now]
    claim_text = f"the best other recipe beats the current one ({label(now)}) on the validation split"
    if now not in by:
        return table, [no_verdict(claim_text, "val_acc", by[max(by, key=val)], [],
                                  "the current recipe has no tuning runs")], []
    if not others:  # the current recipe alone: nothing is selected yet
        return table, [no_verdict(claim_text, "val_acc", [], by[now], "1 recipe recorded, nothing to compare yet")], []
    best, challenger = max(by, key=val), max(others, key=val)
    level = 1 - 0.05 / len(others)
    facts = [fact(f"best recipe by mean validation accuracy: {label(best)}", "val_acc", val(best))]
    differ = lambda k, ref: ", ".join(f"{n}={v}" for n, v, r in zip(RECIPE, k, ref) if v != r)  # noqa: E731
    return table, [tested(f"the best other recipe ({differ(challenger, now)}) beats the current one "
                          f"({differ(now, challenger)}) on the validation split "
                          f"(best of {len(others)}: {100 * level:.1f}% interval)",
                          by[challenger], by[now], "val_acc", rule=lambda a, b: verdict(a, b, level=level))], facts


# ---------------------------------------------------------------- bf16 vs fp32 (not a paper claim)
def precision(rows, claim: dict) -> tuple[list[dict], list[dict], list[dict]]:
    table = summary_table(rows, ("model", "variant"), ("test_acc", "train_throughput_img_s"))
    by = group(rows, ("variant",))
    verdicts = []
    if ("bf16",) in by and ("fp32",) in by:
        verdicts.append(tested("bf16 autocast loses accuracy vs fp32", by[("fp32",)], by[("bf16",)], "test_acc"))
    return table, verdicts, []


def generic(rows, claim: dict) -> tuple[list[dict], list[dict], list[dict]]:
    return summary_table(rows, ("model", "variant"), ("test_acc", "train_throughput_img_s")), [], []


CLAIMS = {"even_kernels": even_kernels, "blurpool": blurpool, "rednet": rednet, "octave": octave,
          "precision": precision, "recipe_tuning": recipe_tuning}
# budget keys an experiment varies on purpose (its axes): they may differ between its runs
VARIES = {"precision": ("precision",), "recipe_tuning": RECIPE}
