"""Run a grid of trained claims (configs/grid/<name>.yaml): its jobs in grid order, N at a time.

    python scripts/run_grid.py standard                  # continue the full-data grid (skips recorded configs)
    python scripts/run_grid.py quick --dry-run           # what would run, what is recorded, the time estimate
    python scripts/run_grid.py standard --jobs 10 --stop-after 60 trainer.device=cuda   # one GPU, one hour
    python scripts/run_grid.py probe_nets                # the nets the trained drift/erosion probes read
    python scripts/run_grid.py standard --only model.name=resnet56 --jobs 8 trainer.device=cuda   # a GPU's share

Each grid entry is a sweep in Hydra's comma syntax; its product gives single ``python train.py`` jobs. Before
running it prints how many jobs of each sweep already have a run record (those are skipped) and an estimate
from the wall times of the records. Jobs then run in grid order, ``--jobs`` at a time with ``--threads``
each (two 1-thread jobs on a 2-core CPU; several jobs share one GPU), each in a fixed run dir
(multirun/grid-<name>/<hash>, console output in <hash>.log) so a killed job resumes from its checkpoint.
A job recorded meanwhile (another machine filling the same records) is skipped when its turn comes.
``--stop-after`` starts no new job after that many minutes. Ctrl-C or SIGTERM starts no new job and asks the
running ones to checkpoint where they are (they stop after their current step); rerunning the same command
resumes them (exit 128 + the signal). A failed job is recorded as failed, reported, and the grid goes on; the
exit code is 1 if any job failed. Each dataset the jobs need is loaded once first:
a missing copy stops the grid in one line (exit 2) before any job starts or records a failure.

A grid with ``record: false`` (``probe_nets``) trains nets for the trained probes: its jobs run whether or not
their config has a record, write none, and keep their checkpoints; a job is done when a finished run of its
experiment and config with a checkpoint is in any grid's run dir (the standard grid's nets count).
A grid's ``probes`` (``{experiment: [probe, ...]}``, e.g. the standard grid's trained drift and erosion probes of
its even-kernel nets) run after each finished job of that experiment, on its checkpoint, where it was trained: each
writes the net's probe record beside its run record (experiments/probe_records.py), which carries the measurement
to other machines as the run record carries the accuracy; a failed probe is reported and counts as a failure.
A done job whose finished net is here but lacks a probe record (its probe failed, or it finished before its grid
had probes) gets only that probe, first, on the next run of the grid.
``--profile`` runs a grid under another profile, in multirun/grid-<name>-<profile>. ``--only KEY=VALUE[,VALUE]``
(repeatable) keeps the jobs whose overrides, as the grid file writes them, match; so machines can share a grid:
a GPU takes the slow cells while a CPU runs the whole grid, skipping each job that a record meanwhile covers.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from hydra import initialize_config_dir  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from engine.job import unwrap  # noqa: E402
from engine.preempt import install_handlers  # noqa: E402
from engine.provenance import machine_name  # noqa: E402
from engine.records import config_hash, experiment_of, find_record  # noqa: E402
from engine.rundir import read_metrics  # noqa: E402
from experiments.grid import GRIDS, job_config, parse_only, selected, sweeps  # noqa: E402
from experiments.probe_records import path_of  # noqa: E402
from experiments.runs import SEP, provenance, read_records, run_wall_s  # noqa: E402


def preflight_data(cfgs: list[DictConfig]) -> str | None:
    """Load each dataset the jobs of ``cfgs`` need once, before any starts; the first failure as one line (else
    None). A missing or broken copy then stops the grid instead of failing, and recording as failed, every job."""
    from hydra.utils import instantiate

    from engine.data import DataUnavailableError

    sources = {}
    for cfg in cfgs:
        sources.setdefault(json.dumps(OmegaConf.to_container(cfg.data.source, resolve=True), sort_keys=True),
                           cfg.data.source)
    for src in sources.values():
        try:
            instantiate(src)
        except Exception as e:  # noqa: BLE001 -- Hydra wraps the loader's error
            if not isinstance(unwrap(e), DataUnavailableError):
                raise
            return str(unwrap(e)).strip().splitlines()[0]
    return None


def recorded_runs(experiment: str, profile: str, records_dir: Path) -> list[dict]:
    """The ok records of this experiment and profile made wholly on this machine (CPU model, cores: every segment of a
    resumed run), with a wall time."""
    here = machine_name()
    on_here = lambda r: all(h.startswith(here) for h in provenance(r)["hardware"].split(SEP))  # noqa: E731
    return [r for r in read_records([records_dir / profile]) if r["experiment"] == experiment and r["status"] == "ok"
            and on_here(r) and isinstance(r["metrics"].get("wall_time_s"), (int, float))]


def estimate_hours(cfgs: list[DictConfig], recs: list[dict], workers: int) -> tuple[float, int]:
    """Hours for the jobs of ``cfgs`` at ``workers`` at a time, from the wall times of ``recs``, and how many jobs had
    no basis (left out of the hours). Per job: the records of the same model config; else those of the same conv kind
    at another depth, scaled by MACs (a ResNet-56 job takes about 3x a ResNet-20 one); else the costliest recorded
    config of the same net, scaled up by MACs but never down (C4 and C5 are compute-bound: about C3 x their MACs; C2's
    half of C3's MACs does not halve its time on a CPU); else no estimate (another net's wall time says little:
    RedNet-26's involutions take far more time per MAC than its ResNet baseline's convs on a CPU)."""
    from hydra.utils import instantiate

    from models.complexity import profile as count

    mean = lambda rs, key: sum(key(r) for r in rs) / len(rs)  # noqa: E731
    wall, macs_cache, total, unknown = (lambda r: run_wall_s(r) / 60), {}, 0.0, 0
    counted = [r for r in recs if r["metrics"].get("macs")]

    def macs(cfg: DictConfig) -> int | None:
        """The model's MACs, None where it cannot be built (the job will fail and be recorded as failed)."""
        key = json.dumps(OmegaConf.to_container(cfg.model, resolve=True), sort_keys=True)
        if key not in macs_cache:
            shape = (cfg.data.channels, cfg.data.image_size, cfg.data.image_size)
            try:
                macs_cache[key] = count(instantiate(cfg.model), shape)["macs"]
            except Exception:  # noqa: BLE001 - hydra wraps the factory's ValueError; the job reports it
                macs_cache[key] = None
        return macs_cache[key]

    bare = lambda m: {k: v for k, v in m.items() if k != "_target_"}  # noqa: E731  (the factory's path is layout)
    for cfg in cfgs:
        model = bare(OmegaConf.to_container(cfg.model, resolve=True))
        name, conv = model.get("name"), model.get("conv")
        same = [r for r in recs if bare(r["config"]["model"]) == model]
        kind = [r for r in counted if conv is not None and r["config"]["model"].get("conv") == conv]
        net = [r for r in counted if r["config"]["model"].get("name") == name]
        if same:
            total += mean(same, wall)
        elif (kind or net) and macs(cfg) is None:
            unknown += 1
        elif kind:
            total += mean(kind, wall) * macs(cfg) / mean(kind, lambda r: r["metrics"]["macs"])
        elif net:
            top = max(r["metrics"]["macs"] for r in net)
            total += mean([r for r in net if r["metrics"]["macs"] == top], wall) * max(1.0, macs(cfg) / top)
        else:
            unknown += 1
    return total / workers / 60, unknown


UNRECORDED = ["trainer.record=false", "trainer.skip_recorded=false", "trainer.skip_finished=true"]  # record: false


def job_dir(runs_dir: Path, name: str, job: list[str], extra: list[str]) -> Path:
    """The fixed run dir of one job (a killed job resumes from its checkpoint there)."""
    return runs_dir / f"grid-{name}" / hashlib.sha256(" ".join([*job, *extra]).encode()).hexdigest()[:10]


def job_command(run_dir: Path, job: list[str], profile: str, threads: int, extra: list[str],
                flags: list[str]) -> list[str]:
    """``python train.py`` for one job in its run dir (``flags``: the grid's own, e.g. ``UNRECORDED``)."""
    return [sys.executable, str(ROOT / "train.py"), *job, f"profile={profile}", f"trainer.threads={threads}", *flags,
            *extra, f"hydra.run.dir={run_dir}"]


def probe_jobs(probes: list[str], cfg: DictConfig, run_dir: Path, profile: str,
               threads: int) -> list[tuple[list[str], Path]]:
    """``(command, run dir)`` of each probe of one finished job's net: ``python train.py experiment=<probe>`` on its
    checkpoint, in ``<run_dir>/probes/<probe>``; it writes the net's probe record where the jobs write records."""
    out = []
    for probe in probes:
        probe_dir = run_dir / "probes" / probe
        out.append(([sys.executable, str(ROOT / "train.py"), f"experiment={probe}", "logger=none",
                     f"probe.checkpoints={run_dir / 'checkpoints' / 'last.pt'}", f"probe.model={cfg.model.name}",
                     f"probe.profile={profile}", f"probe.experiment={experiment_of(cfg)}",
                     f"trainer.threads={threads}", f"hydra.run.dir={probe_dir}"], probe_dir))
    return out


def is_probe(name: str) -> bool:
    """Whether ``experiment=<name>`` is a probe (``configs/experiment/<name>.yaml`` sets ``task: probe``)."""
    path = ROOT / "configs" / "experiment" / f"{name}.yaml"
    return path.exists() and OmegaConf.load(path).get("task") == "probe"


def finished_nets(runs_dir: Path) -> dict[tuple[str, str], Path]:
    """``{(experiment, config hash): run dir}`` of every finished run with a checkpoint in any grid's run dirs under
    ``runs_dir`` (the experiment too: the hash leaves out the name that the probes select by)."""
    nets = {}
    for path in sorted(runs_dir.glob("grid-*/*/metrics.json")):
        metrics = read_metrics(path.parent) or {}
        if metrics.get("status") == "ok" and (path.parent / "checkpoints" / "last.pt").exists():
            nets.setdefault((metrics.get("experiment"), metrics.get("config_hash")), path.parent)
    return nets


def done(cfg: DictConfig, records_dir: Path, nets: dict[tuple[str, str], Path] | None) -> bool:
    """A job is done when its config has a record (a recorded grid: ``nets`` None) or, in a ``record: false``
    grid, when a finished net of its experiment and config is in ``nets`` (this grid's run dir, or another grid's)."""
    if nets is None:
        return find_record(records_dir, config_hash(cfg)) is not None
    return (experiment_of(cfg), config_hash(cfg)) in nets


def unprobed(probes: list[str], cfg: DictConfig, records_dir: Path,
             nets: dict[tuple[str, str], Path]) -> tuple[Path, list[str]] | None:
    """A done job's finished net here (its run dir in ``nets``, this or another grid's) and the probes with no probe
    record of it under ``records_dir`` (a net that finished before its grid had probes, or whose probe failed);
    None when the net is not here or has every probe record."""
    digest = config_hash(cfg)
    net_dir = nets.get((experiment_of(cfg), digest))
    missing = [p for p in probes if not path_of(records_dir, p, cfg, digest).exists()]
    return (net_dir, missing) if net_dir is not None and missing else None


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
INTERRUPTED = {128 + s for s in STOP_SIGNALS} | {-s for s in STOP_SIGNALS}  # a job's exit code when a signal stopped it


class Stop:
    """Ctrl-C or SIGTERM to the grid: start no new job, and send each running job SIGTERM, so it checkpoints
    after its current step (``engine.preempt``; a job in the terminal's process group also gets the Ctrl-C)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.running: set[subprocess.Popen] = set()
        self._lock = threading.Lock()  # a job registered as a signal arrives gets SIGTERM exactly once

    def install(self) -> "Stop":
        install_handlers(STOP_SIGNALS, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        with self._lock:
            if self.signum is not None:  # the first signal is the reason, and the jobs have their SIGTERM
                return
            self.signum, procs = signum, list(self.running)
        print(f"run_grid: {signal.Signals(signum).name}: no new job; running jobs checkpoint and stop", flush=True)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)

    def track(self, proc: subprocess.Popen) -> None:
        """Register a started job. One that a worker started as the signal arrived (after its check, before
        this) gets its SIGTERM here: the handler's list did not hold it."""
        with self._lock:
            self.running.add(proc)
            late = self.signum is not None
        if late:
            proc.send_signal(signal.SIGTERM)


def run_job(cmd: list[str], run_dir: Path, stop: Stop, records_dir: Path | None = None) -> tuple[int, float]:
    """Run one job with its console output in ``<run_dir>.log``, writing its records under ``records_dir``
    ($CONVLAB_RECORDS: an override would put a machine path in the record's rerun command); (exit code, minutes)."""
    log_path = Path(f"{run_dir}.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    t = time.time()
    with open(log_path, "w") as log:
        env = {**os.environ, **({"CONVLAB_RECORDS": str(Path(records_dir).resolve())} if records_dir is not None else {})}
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
        stop.track(proc)
        try:
            code = proc.wait()
        finally:
            stop.running.discard(proc)
    return code, (time.time() - t) / 60


class Todo(NamedTuple):
    """One entry of the pool: a job (its overrides, run dir, is-it-done-now) and its net's probe jobs. With
    ``train=False`` it is a done job whose finished net is here but lacks probe records: only the probes run."""
    job: list[str]
    run_dir: Path
    done_now: Callable[[], bool]
    probes: list[tuple[list[str], Path]]
    train: bool = True


def run_pool(todo: list[Todo | tuple], profile: str, flags: list[str],
             args: argparse.Namespace, stop: Stop | None = None) -> list[str]:
    """Run ``todo`` in grid order, ``args.jobs`` at a time; start none after ``args.stop_after`` minutes, none after
    ``stop`` got a signal or a job was stopped by one, and none that got done meanwhile (a record from another
    machine or grid). A job that ends ok is followed by its probe jobs.

    Returns the jobs and probes that failed. Each one's overrides, exit code and minutes are printed as it ends.
    """
    stop = stop or Stop()
    t0, failed, lock = time.time(), [], threading.Lock()
    queue = [(i, Todo(*item)) for i, item in enumerate(todo, 1)]

    def trained(i: int, job: list[str], run_dir: Path) -> bool:
        """Run one job, print how it ended, and say whether it ended ok."""
        code, minutes = run_job(job_command(run_dir, job, profile, args.threads, args.extra, flags), run_dir, stop,
                                getattr(args, "records", None))
        with lock:
            if code == 0:
                state = "ok"
            elif code in INTERRUPTED:  # checkpointed, no record: the next run of the grid resumes it
                stop.signum = stop.signum or abs(code) % 128
                state = "interrupted (checkpointed)"
            else:
                state = f"FAILED (exit {code}, see {run_dir}.log)"
                failed.append(" ".join(job))
            print(f"  [{i}/{len(todo)}] {state} in {minutes:.1f} min: {' '.join(job)}", flush=True)
        return code == 0

    def probed(i: int, job: list[str], probes: list[tuple[list[str], Path]]) -> None:
        """Run one net's probe jobs in turn; print how each ended (a failed one counts as a failure)."""
        for cmd, probe_dir in probes:
            code, minutes = run_job(cmd, probe_dir, stop, getattr(args, "records", None))
            with lock:
                what = f"{probe_dir.name} of {' '.join(job)}"
                if code != 0:
                    failed.append(f"probe {what}")
                print(f"  [{i}/{len(todo)}] probe {'ok' if code == 0 else f'FAILED (exit {code}, see {probe_dir}.log)'}"
                      f" in {minutes:.1f} min: {what}", flush=True)

    def worker() -> None:
        while True:
            with lock:
                late = args.stop_after is not None and (time.time() - t0) / 60 >= args.stop_after
                if not queue or late or stop.signum is not None:
                    return
                i, (job, run_dir, done_now, probes, train) = queue.pop(0)
            if train and done_now():
                print(f"  [{i}/{len(todo)}] skipped, done meanwhile: {' '.join(job)}", flush=True)
            elif not train or trained(i, job, run_dir):
                probed(i, job, probes)

    threads = [threading.Thread(target=worker) for _ in range(args.jobs)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if queue and stop.signum is not None:
        print(f"stopped by {signal.Signals(stop.signum).name}: {len(queue)} jobs not started", flush=True)
    elif queue:
        print(f"stopped after {args.stop_after} min (--stop-after): {len(queue)} jobs not started", flush=True)
    return failed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid", help="a grid under configs/grid (standard, quick, ceiling) or the path of a .yaml grid file")
    ap.add_argument("extra", nargs="*", help="overrides added to every job, e.g. trainer.device=cuda logger=none")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and the estimate, run nothing")
    ap.add_argument("--jobs", type=int, default=2, help="jobs at a time (2 on a 2-core CPU; 8-12 share one GPU)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per job")
    ap.add_argument("--stop-after", type=float, default=None, metavar="MIN",
                    help="start no job after this many minutes (a lease or session that ends); running jobs finish")
    ap.add_argument("--runs-dir", type=Path, default=ROOT / "multirun",
                    help="run dirs: <runs-dir>/grid-<name>[-<profile>]/<hash>")
    ap.add_argument("--profile", default=None, help="run the grid under this profile instead of its own "
                    "(run dirs: grid-<name>-<profile>), e.g. probe_nets --profile quick")
    ap.add_argument("--only", action="append", default=[], metavar="KEY=VALUE[,VALUE]",
                    help="run only the grid's jobs whose override KEY, as written in the grid file, is one of the "
                    "VALUEs (repeatable: all must hold), "
                    "e.g. --only model.name=resnet56 --only seed=0,1 to give a GPU the slow cells")
    ap.add_argument("--records", type=Path, default=Path(os.environ.get("CONVLAB_RECORDS", ROOT / "results" / "records")),
                    help="where the jobs write their records (paths.records_dir: $CONVLAB_RECORDS, else results/records)")
    args = ap.parse_intermixed_args()  # overrides may come before or after the options
    if args.jobs < 1 or args.threads < 1:
        sys.exit(f"run_grid: --jobs and --threads must be >= 1, got {args.jobs} and {args.threads}")
    try:
        only = parse_only(args.only)
    except ValueError as e:
        sys.exit(f"run_grid: {e}")
    path = Path(args.grid) if args.grid.endswith(".yaml") else GRIDS / f"{args.grid}.yaml"
    if not path.exists():
        sys.exit(f"run_grid: no grid {path}; have: "
                 f"{', '.join(p.stem for p in sorted(path.parent.glob('*.yaml')))}")
    grid = OmegaConf.load(path)
    profile, recorded = args.profile or grid.profile, bool(grid.get("record", True))
    profiles = sorted(p.stem for p in (ROOT / "configs" / "profile").glob("*.yaml") if not p.stem.startswith("_"))
    if profile not in profiles:
        sys.exit(f"run_grid: no profile {profile!r} (configs/profile); have: {', '.join(profiles)}")
    probes = OmegaConf.to_container(grid.probes) if grid.get("probes") else {}
    unknown = [p for ps in probes.values() for p in ps if not is_probe(p)]
    if unknown:
        print(f"run_grid: no job started: the grid's probes name {', '.join(unknown)}, which is no probe experiment "
              "(configs/experiment/<name>.yaml with task: probe)", file=sys.stderr)
        sys.exit(2)
    name = path.stem if profile == grid.profile else f"{path.stem}-{profile}"
    state = "recorded" if recorded else "finished"
    nets = None if recorded else finished_nets(args.runs_dir)
    here = (nets if nets is not None else finished_nets(args.runs_dir)) if probes else {}
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        plan = []  # per sweep: (its overrides, its jobs not yet done with their run dirs and configs, its number of jobs)
        backlog = []  # done jobs whose net is here without its probe records: (overrides, config, net dir, probes)
        for s, sweep_jobs in sweeps(path):
            jobs = [(job, job_dir(args.runs_dir, name, job, args.extra), job_config(job, profile, args.extra))
                    for job in sweep_jobs if selected(job, only)]
            if not jobs:
                continue
            finished = [done(cfg, args.records, nets) for *_, cfg in jobs]
            left = [j for j, f in zip(jobs, finished) if not f]
            plan.append((s, left, len(jobs)))
            backlog += [(job, cfg, *u) for (job, _, cfg), f in zip(jobs, finished)
                        if f and (u := unprobed(probes.get(experiment_of(cfg), []), cfg, args.records, here))]

    def done_now(cfg: DictConfig) -> Callable[[], bool]:  # asked again as the job's turn comes
        return lambda: done(cfg, args.records, None if recorded else finished_nets(args.runs_dir))

    if not plan and only:
        sys.exit(f"run_grid: no job of grid {args.grid} matches --only {' '.join(args.only)}")
    todo = [Todo(job, net_dir, lambda: False, probe_jobs(missing, cfg, net_dir, profile, args.threads), train=False)
            for job, cfg, net_dir, missing in backlog]  # first: minutes each, and their nets are here now
    todo += [Todo(job, run_dir, done_now(cfg),
                  probe_jobs(probes.get(experiment_of(cfg), []), cfg, run_dir, profile, args.threads))
             for _, left, _ in plan for job, run_dir, cfg in left]
    print(f"grid {args.grid} (profile {profile}{', only ' + ' '.join(args.only) if only else ''}): "
          f"{len(plan)} sweeps, {sum(n for *_, n in plan)} jobs, "
          f"{len(todo) - len(backlog)} not yet {state}; {args.jobs} at a time, {args.threads} thread(s) each", flush=True)
    if backlog:
        print(f"{len(backlog)} {state} net(s) here without their probe records, probed first: "
              + "; ".join(f"{' '.join(job)} ({', '.join(missing)})" for job, _, _, missing in backlog), flush=True)
    for i, (s, left, n) in enumerate(plan, 1):
        keys = dict(o.split("=", 1) for o in s if "=" in o)
        exp = keys.get("experiment_name", keys.get("experiment", ""))  # the name its records are filed under
        recs = recorded_runs(exp.replace("_baseline", ""), profile, args.records)
        hours, unknown = estimate_hours([cfg for *_, cfg in left], recs, args.jobs)
        eta = f", about {hours:.1f} h at {args.jobs} at a time on this machine" if len(left) > unknown else ""
        eta += f"{' +' if eta else ','} {unknown} job(s) without an estimate (no record of its net or conv kind on this machine)" if unknown else ""
        print(f"[{i}/{len(plan)}] {' '.join(s)}: {n - len(left)}/{n} {state}{eta}", flush=True)
    if args.dry_run or not todo:
        return
    missing = preflight_data([cfg for _, left, _ in plan for *_, cfg in left] + [cfg for _, cfg, *_ in backlog])
    if missing:
        print(f"run_grid: no job started: {missing}", file=sys.stderr)
        sys.exit(2)
    stop = Stop().install()
    failed = run_pool(todo, profile, [] if recorded else UNRECORDED, args, stop)
    if failed:
        what = ("recorded as failed" if recorded else "see their run dirs") + (
            "; each probe's log is beside its dir in <run dir>/probes" if any(f.startswith("probe ") for f in failed) else "")
        print(f"run_grid: {len(failed)} jobs of grid {name} failed ({what}): " + "; ".join(failed), file=sys.stderr)
    if stop.signum is not None:
        print(f"run_grid: stopped by {signal.Signals(stop.signum).name}; rerun the same command to resume",
              file=sys.stderr)
        sys.exit(128 + stop.signum)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
