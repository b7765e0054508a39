"""Report rules on inputs whose verdict is known, including inputs that must not get one."""
from __future__ import annotations

from experiments import rules, stats
from experiments.report import tally
from experiments.results_md import trained_drift_verdict


def _rows(accs, **keys):
    return [{"test_acc": a, "num_classes": 10, "params": 100, "macs": 10, **keys} for a in accs]


def test_a_clear_gain_is_reproduced_and_a_clear_loss_is_not():
    better, base = _rows([91.0, 91.2, 90.9]), _rows([88.0, 88.3, 87.9])
    assert rules.tested("x", better, base, "test_acc")["verdict"] == "reproduced"
    assert rules.tested("x", base, better, "test_acc")["verdict"] == "not reproduced"
    assert rules.tested("x", better, _rows([91.3, 90.8, 91.0]), "test_acc")["verdict"] == "inconclusive"


def test_one_seed_or_a_net_at_chance_gets_no_verdict():
    assert rules.tested("x", _rows([91.0]), _rows([88.0, 88.3]), "test_acc")["verdict"].startswith("no verdict")
    chance = rules.tested("x", _rows([14.0, 13.0, 12.5]), _rows([10.0, 10.2, 9.9]), "test_acc")
    assert chance["verdict"] == "no verdict: a net at chance level (10.0 % test accuracy)"


def test_the_tally_counts_verdicts_only():
    rows = [{"verdict": "reproduced"}, {"verdict": "not reproduced"}, {"verdict": "no verdict: n < 2"},
            {"verdict": "reproduced"}]
    assert tally(rows) == "2 reproduced, 1 not reproduced"
    assert tally([{"verdict": "no verdict: x"}]) == "no verdict yet"


def test_params_axis_interpolates_c3_in_log_params():
    rows = (_rows([90.0, 90.1, 89.9], model="d56", conv="c2sp", params=400)
            + [dict(r, params=200) for r in _rows([88.0, 88.1, 87.9], model="d20", conv="c3")]
            + [dict(r, params=800) for r in _rows([92.0, 92.1, 91.9], model="d56", conv="c3")])
    _, verdicts, _ = rules.even_kernels(rows, {})
    curve = next(v for v in verdicts if "curve" in v["claim"])
    assert abs(curve["diff"]) < 1e-9 and curve["verdict"] == "reproduced"  # 400 is halfway in log2 from 200 to 800


def _run(acc, val_curve, **keys):
    row = {"test_acc": acc, "val_acc": val_curve[-1], "num_classes": 10, "model": "resnet20", "conv": "c3",
           "dataset": "image_folder", "history": [{"epoch": i + 1, "val_acc": v} for i, v in enumerate(val_curve)]}
    return {**row, **keys}


def test_ceiling_facts_measure_the_gap_and_the_epochs_to_within_1_5_pp():
    ceiling = [_run(90.0, [50.0, 91.0], epochs=100, experiment="ceiling"),
               _run(80.0, [80.0], epochs=50, experiment="ceiling"),  # the longest schedule counts
               _run(99.0, [99.0], epochs=300, experiment="even_kernels")]  # another experiment: never the ceiling
    standard = [_run(88.0, [80.0, 89.5, 89.6], epochs=3), _run(87.0, [80.0, 88.0, 89.5], epochs=3),
                _run(86.0, [80.0, 85.0, 89.0], epochs=3)]
    facts = {f["metric"]: f for f in rules.ceiling_facts(standard, ceiling)}
    assert facts["test_acc"]["measured"] == 90.0 - 87.0 and facts["test_acc"]["expected"] == rules.CEILING_GAP
    assert facts["epochs"]["measured"] == (2 + 3) / 2  # target 91.0 - 1.5 = 89.5; the third run never reaches it
    assert "2 of 3 runs" in facts["epochs"]["claim"]
    other_data = [_run(95.0, [95.0], epochs=300, dataset="cifar10", experiment="ceiling")]
    assert rules.ceiling_facts(standard, other_data) == [] and rules.ceiling_facts(standard, None) == []


def test_ceiling_facts_time_each_machine_to_within_1_5_pp_from_the_epoch_times():
    ceiling = [_run(90.0, [91.0], epochs=100, experiment="ceiling")]
    cpu, gpu = "AMD EPYC (2 cores), 1 thread(s)", "Xeon, NVIDIA H200"
    standard = [_run(88.0, [80.0, 89.5, 89.6], epochs=3, hardware=cpu),
                _run(87.0, [80.0, 85.0, 89.0], epochs=3, hardware=cpu),  # never reaches 89.5
                _run(88.0, [89.5, 89.6, 89.7], epochs=3, hardware=gpu)]
    for r, secs in zip(standard, ([600, 900, 600], [600] * 3, [20, 30, 30])):
        for h, t in zip(r["history"], secs):
            h["epoch_time_s"] = t
    timed = {f["claim"].split(" on ")[1].split(" (mean")[0]: f for f in rules.ceiling_facts(standard, ceiling)
             if f["metric"] == "train_min"}
    assert timed[cpu]["measured"] == (600 + 900) / 60 and "the 1 of 2 runs there" in timed[cpu]["claim"]
    assert timed[gpu]["measured"] == 20 / 60 and timed[gpu]["expected"] == rules.TIME_AIM_MIN
    assert rules.time_to(standard[1]["history"], 89.5) is None


# what a report row holds besides its metrics: the budget, its provenance, the standard profile's recipe
_BUDGET = {"dataset": "image_folder", "train_subset": None, "epochs": 30, "precision": "fp32", "hardware": "h",
           "git_commit": "c", "backfilled": False, "date": "2026-11-26", "history": []}
_RECIPE = {"lr": 0.1, "weight_decay": 5e-4, "label_smoothing": 0.1, "batch_size": 128}


def _tuning(lr, vals):
    return [{**_BUDGET, **_RECIPE, "val_acc": v, "test_acc": v - 1, "num_classes": 10, "model": "resnet20", "lr": lr,
             "profile": "standard"} for v in vals]


def test_recipe_tuning_selects_on_validation_and_tests_the_best_against_the_current_recipe(tmp_path, monkeypatch):
    current = _RECIPE
    rows = _tuning(0.1, [86.0, 86.2, 86.1]) + _tuning(0.2, [87.5, 87.7, 87.6]) + _tuning(0.4, [85.0, 85.1, 85.2])
    table, verdicts, facts = rules.recipe_tuning(rows, {}, current)
    assert [r["lr"] for r in table] == [0.2, 0.1, 0.4]  # sorted by validation accuracy
    assert "lr=0.2" in facts[0]["claim"] and abs(facts[0]["measured"] - 87.6) < 1e-9
    assert len(verdicts) == 1 and verdicts[0]["verdict"] == "reproduced" and "current one (lr=0.1" in verdicts[0]["claim"]
    # picked from the 2 other recipes: a 97.5 % (Bonferroni) interval, wider than the plain 95 % one
    plain = stats.verdict([87.5, 87.7, 87.6], [86.0, 86.2, 86.1])
    assert verdicts[0]["ci_low"] < plain["ci_low"] and "best of 2: 97.5% interval" in verdicts[0]["claim"]
    # the recipe knobs are this experiment's axes: the report does not withhold its verdict as a budget mix
    from experiments.report import profile_section

    monkeypatch.setattr(rules, "current_recipe", lambda profile: current)
    _, shown = profile_section("recipe_tuning", "standard", rows, [], {}, tmp_path)
    assert shown[0]["verdict"] == "reproduced"
    # the current recipe leads: the same claim, tested on the runner-up, comes out not reproduced
    _, same, same_facts = rules.recipe_tuning(_tuning(0.1, [88.0, 88.1]) + _tuning(0.2, [87.0, 87.2]), {}, current)
    assert len(same) == 1 and same[0]["verdict"] == "not reproduced" and "other recipe (lr=0.2) beats the current one (lr=0.1)" in same[0]["claim"]
    assert len(same_facts) == 1 and "lr=0.1" in same_facts[0]["claim"]
    one_seed = rules.recipe_tuning(_tuning(0.1, [86.8]) + _tuning(0.2, [86.7]), {}, current)[1]
    assert one_seed[0]["verdict"] == stats.NO_INTERVAL
    missing = rules.recipe_tuning(_tuning(0.2, [87.0, 87.2]), {}, current)[1]
    assert missing[0]["verdict"] == "no verdict: the current recipe has no tuning runs"
    alone = rules.recipe_tuning(_tuning(0.1, [88.0]), {}, current)  # the grid's first run: no best of one yet
    assert alone[2] == [] and alone[1][0]["verdict"] == "no verdict: 1 recipe recorded, nothing to compare yet"


def test_current_recipe_is_what_the_standard_profile_composes():
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from experiments.runs import ROOT

    assert rules.current_recipe("standard") == _RECIPE
    with initialize_config_dir(str(ROOT / "configs"), version_base=None):  # as inside a running Hydra app
        assert rules.current_recipe("standard") == _RECIPE
        assert GlobalHydra.instance().is_initialized()  # the app's Hydra is left alone


def test_provenance_flags_runs_of_different_recipes():
    from experiments.report import _provenance

    row = {**_BUDGET, **_RECIPE}
    same = _provenance([row, dict(row)], [])
    assert "budget: image_folder, all train images, 30 epochs, fp32, lr 0.1, weight_decay 0.0005" in same
    mixed = _provenance([row, dict(row, lr=0.2)], [])
    assert "budget (MIXED): " in mixed and "lr 0.1" in mixed and "lr 0.2" in mixed


def test_no_verdict_across_recipes(tmp_path):
    """A section whose runs trained with different recipes compares nothing: its verdicts are withheld."""
    from experiments.report import profile_section

    def row(conv, acc, lr):
        return {**_BUDGET, **_RECIPE, "test_acc": acc, "num_classes": 10, "params": 100, "macs": 10,
                "model": "resnet20", "conv": conv, "lr": lr}

    one = [row("c3", a, 0.1) for a in (91.0, 91.2, 90.9)] + [row("c2", a, 0.1) for a in (88.0, 88.3, 87.9)]
    _, verdicts = profile_section("even_kernels", "standard", one, [], {}, tmp_path / "a")
    assert any(v["verdict"] == "reproduced" for v in verdicts)
    two = one[:3] + [dict(r, lr=0.2) for r in one[3:]]
    _, verdicts = profile_section("even_kernels", "standard", two, [], {}, tmp_path / "b")
    assert verdicts and all(v["verdict"] == "no verdict: the runs mix 2 budgets/recipes (see the budget line)"
                            for v in verdicts)


def test_a_claim_recorded_only_off_the_claims_regime_says_that_regime_is_not_run(tmp_path):
    """The summary never shows a quick-profile tally alone as if it were the claim's verdict."""
    from experiments.report import REGIME, build_reports
    from experiments.results_md import _tally

    rows = [{**_BUDGET, **_RECIPE, "test_acc": a, "num_classes": 10, "params": 100, "macs": 10, "model": "resnet20",
             "conv": conv, "experiment": "even_kernels", "profile": "quick"}
            for conv, accs in (("c3", (91.0, 91.2, 90.9)), ("c2", (88.0, 88.3, 87.9))) for a in accs]
    sec = build_reports(rows, tmp_path)["even_kernels"]
    assert list(sec["verdicts"]) == [REGIME, "quick"] and sec["verdicts"][REGIME] is None
    assert sec["md"].index(f"### even_kernels, {REGIME} profile") < sec["md"].index("### even_kernels, quick profile")
    assert _tally(sec["verdicts"]).startswith(f"{REGIME}: not run yet; quick: 1 reproduced")
    ran = build_reports([dict(r, profile=REGIME) for r in rows], tmp_path / "std")["even_kernels"]
    assert list(ran["verdicts"]) == [REGIME] and "No run recorded yet" not in ran["md"]


def test_a_failed_probe_output_is_shown_as_failed_and_never_read(tmp_path):
    """A probe that failed leaves metrics.json with its error: RESULTS.md says so instead of crashing on it."""
    import json

    from experiments.results_md import render

    out = tmp_path / "trained_erosion_quick"
    out.mkdir()
    (out / "metrics.json").write_text(json.dumps({"status": "failed", "error": "ConfigError: no finished nets"}))
    text = render(tmp_path, {})
    assert "| trained_erosion | 000 | no verdict: the probe failed (quick) |" in text  # names the nets' profile
    assert "the probe failed: ConfigError: no finished nets" in text


def test_speed_verdicts_compare_img_s_on_one_hardware_only():
    gpu, cpu = "Xeon (16 cores), 1 thread(s), NVIDIA H100 80GB HBM3", "AMD EPYC (2 cores), 1 thread(s)"

    def runs(alpha, img_s, hardware):
        return [dict(r, model="oct", alpha=alpha, step_img_s=s, saved_activation_mb=1.0, hardware=hardware)
                for r, s in zip(_rows([90.0] * len(img_s)), img_s)]
    # alpha=0.5 is slower than alpha=0 on each machine; pooled over both machines it would look faster
    rows = (runs(0.0, [7000, 7100, 6900], gpu) + runs(0.0, [100, 110], cpu)
            + runs(0.5, [3000, 3100, 3050], gpu) + runs(0.5, [60, 62, 61], cpu))
    table, verdicts, facts = rules.octave(rows, {})
    base = next(r for r in table if r["alpha"] == 0.0)  # the summary's img/s: the GPU runs only, never pooled
    assert (base["step_img_s_mean"], base["step_img_s_n"], base["n"]) == (7000, 3, 5)
    assert base["step_img_s_hardware"] == "NVIDIA H100 80GB HBM3"
    unmeasured = [dict(r, step_img_s=None) for r in runs(0.0, [1, 1, 1, 1], cpu)]  # older records: no img/s
    (row,) = rules.summary_table(runs(0.0, [7000, 7100], gpu) + unmeasured, ("alpha",), ("step_img_s",))
    assert (row["step_img_s_mean"], row["step_img_s_n"], row["n"]) == (7050, 2, 6)
    speed = next(v for v in verdicts if v["metric"] == "step_img_s")
    assert speed["claim"].endswith("on NVIDIA H100 80GB HBM3") and (speed["n_a"], speed["n_b"]) == (3, 3)  # GPU: 3 pairs, CPU: 2
    assert speed["verdict"] == "not reproduced"
    step = next(f for f in facts if f["metric"] == "step time")
    assert abs(step["measured"] - 7000 / 3050) < 1e-9 and "on NVIDIA H100" in step["claim"]
    apart = rules.tested_speed("x", runs(0.5, [3000, 3100], gpu), runs(0.0, [100, 110], cpu))
    assert apart["verdict"] == "no verdict: the two cells were measured on different hardware"
    assert rules.speed_hardware(cpu) == rules.speed_hardware("AMD EPYC (2 cores), 1 threads") == cpu
    assert rules.speed_hardware("AMD EPYC (2 cores), 2 thread(s)") != cpu


def test_trained_drift_without_c2_runs_gets_no_verdict_not_a_crash():
    ours, verdict = trained_drift_verdict({"offset_last_stage_c2sp": 0.1, "offset_last_stage_c3": 0.2,
                                           "runs_c2sp": 3, "runs_c3": 1, "profile": "standard"})
    assert verdict == "no verdict: needs trained C2 and C2sp runs"
    assert "mean |offset| C2SP 0.10 px (n=3), C3 0.20 px (n=1); no C2 runs" in ours


def test_trained_drift_verdict_needs_two_runs_of_c2_and_c2sp():
    """One seed is not "C2 up-left in every run": n = 1 gets no verdict, as in every trained rule."""
    def m(runs_c2, runs_c2sp, up_left, sp):
        return {"offset_last_stage_c2": 1.8, "offset_last_stage_c2sp": sp, "dy_last_stage_c2": -1.3,
                "dx_last_stage_c2": -1.2, "runs_c2": runs_c2, "runs_c2sp": runs_c2sp,
                "up_left_runs_c2": up_left, "profile": "standard"}

    ours, verdict = trained_drift_verdict(m(1, 1, 1, 0.1))
    assert verdict.startswith("no verdict: needs at least 2 runs each of C2 and C2sp (rule: ")
    assert "C2 1.80 px (n=1) vs C2sp 0.10 px (n=1)" in ours
    assert trained_drift_verdict(m(3, 1, 3, 0.1))[1].startswith("no verdict")
    assert trained_drift_verdict(m(2, 2, 2, 0.1))[1].startswith("reproduced (rule: ")
    assert trained_drift_verdict(m(3, 3, 2, 0.1))[1].startswith("not reproduced")  # one C2 run not up-left
    assert trained_drift_verdict(m(3, 3, 3, 1.0))[1].startswith("not reproduced")  # C2sp drifts half as much
