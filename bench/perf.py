"""repliflow against the in-process loops it replaces: tiny steps, heavy steps, scale.

    python bench/perf.py setup          # make bench/.venv-crystallize and bench/.venv-workflow
    python bench/perf.py tiny  [--replicates 1000] [--per-job auto,one] [--repeats 3]
    python bench/perf.py heavy [--replicates 20] [--seconds 0.2] [--per-job auto,10] [--repeats 2]
    python bench/perf.py scale [--replicates 10000] [--repeats 2]
    python bench/perf.py all            # tiny, heavy and scale with their defaults

Each runs the SAME experiment through the real workflow (`python -m snakemake
--snakefile <repo>/Snakefile --directory <dir> --configfile <dir>/config.yaml
--cores 2 -q`) and through the references in one invocation, every run a whole
process in a fresh directory under bench/work/, interleaved over the repeats,
and prints a header (with the load average) and one line per figure:
``name value unit ratio``, the ratio naming what it is relative to. Every
figure is the fastest of the repeats. bench/README.md explains each figure.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

# ----------------------------------------------------------------- experiments

HEAVY_STEPS = '''\
"""One CPU-bound step: a pure-Python busy loop of a fixed number of iterations."""


def burn(ctx, *, iterations, shift=0.0):
    acc = 0
    for i in range(iterations):
        acc = (acc + i * i) % 1000003
    return {"x": shift + float(ctx.rng.normal()), "acc": acc}


def metrics(data, ctx):
    return {"x": data["x"], "acc": float(data["acc"])}
'''

SCALE_STEPS = '''\
"""A shared datasource and one step that the treatments change, both tiny."""


def source(ctx, *, n=4):
    return [float(x) for x in ctx.rng.normal(size=n)]


def score(data, ctx, *, factor=1.0):
    return {"mean": factor * sum(data) / len(data)}
'''


def heavy_config(replicates: int, per_job, iterations: int) -> dict:
    """The busy loop is the datasource and every condition changes it, so
    nothing is shared: 3 x replicates burns everywhere."""
    return common.experiment_config(
        replicates,
        per_job,
        datasource={"function": "burn", "params": {"iterations": iterations, "shift": 0.0}},
        pipeline=[{"function": "metrics"}],
        treatments={"plus1": {"datasource": {"shift": 1.0}}, "plus2": {"datasource": {"shift": 2.0}}},
        metric="x",
    )


def scale_config(replicates: int, per_job) -> dict:
    return common.experiment_config(
        replicates,
        per_job,
        datasource={"function": "source", "params": {"n": 4}},
        pipeline=[{"function": "score", "params": {"factor": 1.0}}],
        treatments={"double": {"score": {"factor": 2.0}}, "triple": {"score": {"factor": 3.0}}},
        metric="mean",
    )


def busy_loop(iterations: int) -> int:
    """The same loop as HEAVY_STEPS' burn, for calibration."""
    acc = 0
    for i in range(iterations):
        acc = (acc + i * i) % 1000003
    return acc


def calibrate(seconds: float) -> int:
    """Iterations of the busy loop that take ``seconds`` here (fastest of 7;
    on a loaded machine this undercounts: the header shows the real time per
    call, measured in the plain loop)."""
    probe = 1_000_000
    best = min(_timed(busy_loop, probe) for _ in range(7))
    return max(1, round(probe * seconds / best))


def _timed(function, *args) -> float:
    clock = time.perf_counter()
    function(*args)
    return time.perf_counter() - clock


# ---------------------------------------------------------------- measurement


class Figures:
    """Seconds per named run over the repeats, plus the facts to check them by."""

    def __init__(self):
        self.times: dict[str, list[float]] = {}
        self.rss: dict[str, list[float]] = {}
        self.dirs: list[Path] = []

    def record(self, name: str, seconds: float | None, rss_mb: float | None = None) -> None:
        if seconds is not None:
            self.times.setdefault(name, []).append(seconds)
        if rss_mb is not None:
            self.rss.setdefault(name, []).append(rss_mb)

    def best(self, name: str) -> float:
        # The fastest of the repeats: other processes on the machine can only
        # add time, so the minimum is the best estimate of the mechanism's cost.
        return min(self.times[name])

    def fresh(self, config: dict, steps: str) -> Path:
        path = common.make_experiment(config, steps, prefix=f"{config['experiment']}-")
        self.dirs.append(path)
        return path

    def raw(self) -> None:
        for name, values in self.times.items():
            print(f"# raw {name}: {' '.join(f'{v:.3f}' for v in values)} s")
        for name, values in self.rss.items():
            print(f"# raw {name} peak RSS: {' '.join(f'{v:.0f}' for v in values)} MB")


def per_job_values(text: str, replicates: int) -> list:
    values = []
    for part in text.split(","):
        part = part.strip()
        values.append("auto" if part == "auto" else replicates if part == "one" else int(part))
    return values


def variant_name(per_job, replicates: int) -> str:
    if per_job == "auto":
        return "repliflow_auto"
    if per_job == replicates:
        return "repliflow_one_block"
    return f"repliflow_per_job_{per_job}"


def plan_variants(figs: Figures, configs: dict, steps: str, cores: int) -> dict[str, dict]:
    """Per workflow variant: its segment jobs and replicate-steps from the
    planner, and the total jobs an untimed dry run plans (which also warms the
    disk caches, so the first timed run does not pay for cold imports)."""
    facts = {}
    for name, config in configs.items():
        work = figs.fresh(config, steps)
        segment_jobs, replicate_steps = common.count_work(config, work)
        stats = common.job_stats(work, cores)
        if stats.get(common.SEGMENT_RULE) != segment_jobs:
            print(
                f"# WARNING: {name}: a dry run plans {stats.get(common.SEGMENT_RULE)} "
                f"{common.SEGMENT_RULE} jobs, build_plan {segment_jobs}",
                file=sys.stderr,
            )
        facts[name] = {
            "segment_jobs": segment_jobs,
            "steps": replicate_steps,
            "total_jobs": sum(stats.values()),
        }
    return facts


def run_references(figs: Figures, config: dict, steps: str, workers: int) -> list:
    """One repeat of every reference, each a whole process in a fresh
    directory; returns the plain loop's rows, which every other run must equal."""
    work = figs.fresh(config, steps)
    whole, loop, rows = common.reference(config, work)
    figs.record("inprocess", whole)
    figs.record("inprocess_loop_only", loop)
    whole, _, verified_rows = common.reference(config, work, verify=True)
    common.check_same_numbers(f"the reference with Welch tests in {work}", verified_rows, rows)
    figs.record("inprocess_welch", whole)
    whole, _, pool_rows = common.reference(config, work, workers=workers)
    common.check_same_numbers(f"the ProcessPoolExecutor reference in {work}", pool_rows, rows)
    figs.record(f"pool_{workers}", whole)
    for name, count in (("crystallize_serial", 0), (f"crystallize_process_{workers}", workers)):
        work = figs.fresh(config, steps)  # Crystallize writes its artifacts there
        whole, _, crystallize_rows = common.reference(config, work, workers=count, crystallize=True)
        common.check_same_numbers(f"the Crystallize reference ({name}) in {work}", crystallize_rows, rows)
        figs.record(name, whole)
    return rows


def run_workflow(
    figs: Figures, name: str, config: dict, steps: str, cores: int, facts: dict, rows: list
) -> Path:
    work = figs.fresh(config, steps)
    run = common.snakemake(work, cores)
    common.expect_jobs(name, run.output, facts[name]["total_jobs"])
    common.check_workflow_numbers(work, rows)
    figs.record(name, run.seconds, run.max_rss_mb)
    figs.record(f"{name}_runner", common.runner_seconds(work))
    return work


def compare(args, make_config, steps: str) -> tuple[Figures, dict, list, str]:
    """Every reference and every workflow variant (one per ``--per-job``
    value; ``make_config(per_job)`` makes its config), ``args.repeats`` times,
    interleaved so that a slow spell of the machine spreads over all figures.
    Returns the figures, the plan's facts per variant, the reference and
    variant lines, and the fastest variant."""
    per_job = per_job_values(args.per_job, args.replicates)
    variants = {variant_name(v, args.replicates): make_config(v) for v in per_job}
    reference_config = make_config("auto")
    figs = Figures()
    try:
        facts = plan_variants(figs, variants, steps, args.cores)
        for _ in range(args.repeats):
            rows = run_references(figs, reference_config, steps, args.workers)
            for name, config in variants.items():
                run_workflow(figs, name, config, steps, args.cores, facts, rows)
    finally:
        common.remove_dirs(figs.dirs, args.keep)
    return figs, facts, reference_lines(figs, args.workers, variants), min(variants, key=figs.best)


def jobs_text(facts: dict) -> str:
    return ", ".join(
        f"{n}: {f['segment_jobs']} segment jobs + {f['total_jobs'] - f['segment_jobs']} tail"
        for n, f in facts.items()
    )


def finish(title: str, args, start: tuple, detail: str, figs: Figures, lines: list, targets: str) -> None:
    """Header, figures, verdicts, raw repeats, duration."""
    started, load_before, clock = start
    header(title, args, started, load_before, detail)
    common.print_figures(lines)
    print(f"# {targets}")
    if args.raw:
        figs.raw()
    print(f"# benchmark took {time.perf_counter() - clock:.0f} s")


def start() -> tuple:
    return common.started_at(), common.load_average(), time.perf_counter()


REFERENCES = ("inprocess", "pool_{w}", "crystallize_serial", "crystallize_process_{w}")


def reference_lines(figs: Figures, workers: int, variants: dict) -> list:
    """The references', then every workflow variant's line, against inprocess."""
    base = figs.best("inprocess")
    names = [template.format(w=workers) for template in REFERENCES]
    names += ["inprocess_loop_only", "inprocess_welch", *variants]
    return [(name, figs.best(name), "s", common.ratio(figs.best(name), base, "inprocess")) for name in names]


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def header(title: str, args, started: str, load_before: str, detail: str) -> None:
    print(
        f"# repliflow {title}, started {started}: {common.environment()}, --cores {args.cores}, "
        f"fastest of {args.repeats}; load average (1/5/15 min) {load_before} at the start, "
        f"{common.load_average()} at the end; experiments in {common.WORK}"
    )
    print(f"# {detail}")
    if common.SLURM_NOTE:
        print(f"# {common.SLURM_NOTE}")


# ----------------------------------------------------------------------- tiny


def tiny(args) -> None:
    begun = start()
    replicates, workers = args.replicates, args.workers
    figs, facts, lines, best = compare(
        args, lambda per_job: common.tiny_config(replicates, per_job, samples=args.samples), common.TINY_STEPS
    )
    base, crystallize = figs.best("inprocess"), figs.best("crystallize_serial")
    best_s, steps_count = figs.best(best), facts[best]["steps"]
    welch_ratio = common.ratio(best_s, figs.best("inprocess_welch"), "inprocess_welch")
    lines.append(("repliflow_best_vs_inprocess_welch", best_s, "s", welch_ratio))
    lines.append(
        (
            "repliflow_best_vs_crystallize_serial",
            best_s,
            "s",
            common.ratio(best_s, crystallize, "crystallize_serial"),
        )
    )
    per_step = best_s / steps_count
    lines.append(
        ("repliflow_best_per_replicate_step", per_step * 1e3, "ms", common.ratio(best_s, base, "inprocess"))
    )
    if f"{best}_runner" in figs.times:
        runner = figs.best(f"{best}_runner") / steps_count
        loop = figs.best("inprocess_loop_only") / steps_count
        ratio = common.ratio(runner, loop, "inprocess_loop_only")
        lines.append(("repliflow_best_in_runner_per_replicate_step", runner * 1e6, "us", ratio))
    targets = (
        f"best is {best}; targets: <= 3.0x inprocess: {best_s / base:.2f}x {verdict(best_s <= 3 * base)}; "
        f"faster than crystallize_serial: {best_s / crystallize:.2f}x {verdict(best_s < crystallize)}"
    )
    detail = (
        f"3 conditions x {replicates} replicates x (datasource + 2 steps), n={args.samples}; the "
        f"datasource is shared, so {steps_count} replicate-steps; {jobs_text(facts)}; pool and "
        f"Crystallize with {workers} workers"
    )
    finish("tiny", args, begun, detail, figs, lines, targets)


# ---------------------------------------------------------------------- heavy


def heavy(args) -> None:
    begun = start()
    replicates, workers = args.replicates, args.workers
    iterations = args.iterations or calibrate(args.seconds)
    figs, facts, lines, best = compare(
        args, lambda per_job: heavy_config(replicates, per_job, iterations), HEAVY_STEPS
    )
    for name in [template.format(w=workers) for template in REFERENCES] + ["inprocess_welch"]:
        lines.append((f"speedup_over_{name}", figs.best(name) / figs.best(best), "x", f"{name}_over_{best}"))
    speedup = figs.best("inprocess") / figs.best(best)
    targets = (
        f"best is {best}; target: speed-up over inprocess >= 1.85x: {speedup:.2f}x {verdict(speedup >= 1.85)}"
    )
    per_burn = figs.best("inprocess_loop_only") / (3 * replicates)
    detail = (
        f"3 conditions x {replicates} replicates, a busy-loop datasource of {iterations} iterations "
        f"(calibrated to {args.seconds} s; {per_burn:.3f} s per call in the plain loop) + a metrics step, "
        f"nothing shared; {jobs_text(facts)}; pool and Crystallize with {workers} workers"
    )
    finish("heavy", args, begun, detail, figs, lines, targets)


# ---------------------------------------------------------------------- scale


def scale(args) -> None:
    begun = start()
    replicates, cores = args.replicates, args.cores
    steps = SCALE_STEPS
    auto = scale_config(replicates, "auto")
    # One job per replicate x segment, at the replicates that make
    # --jobs1-jobs jobs (the shared datasource is a 4th segment): the DAG the
    # issue's "30k jobs" means. Planned (-n), never run: it would take hours.
    jobs1 = scale_config(max(1, args.jobs1_jobs // 4), 1)
    figs = Figures()
    try:
        facts = plan_variants(figs, {"auto": auto}, steps, cores)
        jobs1_jobs, _ = common.count_work(jobs1, figs.dirs[0])
        for repeat in range(args.repeats):
            work = figs.fresh(auto, steps)
            whole, loop, rows = common.reference(auto, work)
            figs.record("inprocess", whole)
            figs.record("inprocess_loop_only", loop)
            if repeat < args.jobs1_repeats:
                run = common.snakemake(figs.fresh(jobs1, steps), cores, "-n")
                figs.record("dry_run_jobs1", run.seconds, run.max_rss_mb)
            run = common.snakemake(work, cores, "-n")
            figs.record("dry_run_auto", run.seconds, run.max_rss_mb)
            run = common.snakemake(work, cores)
            common.expect_jobs("first_run_auto", run.output, facts["auto"]["total_jobs"])
            common.check_workflow_numbers(work, rows)
            figs.record("first_run_auto", run.seconds, run.max_rss_mb)
            figs.record("first_run_auto_runner", common.runner_seconds(work))
            run = common.snakemake(work, cores)
            common.expect_jobs("noop_rerun_auto", run.output, 0)
            figs.record("noop_rerun_auto", run.seconds, run.max_rss_mb)
    finally:
        common.remove_dirs(figs.dirs, args.keep)

    lines: list = []
    auto_facts = facts["auto"]
    tail = auto_facts["total_jobs"] - auto_facts["segment_jobs"]
    base = figs.best("inprocess")
    lines.append(("inprocess", base, "s", "1.00x_inprocess"))
    lines.append(
        (
            "inprocess_loop_only",
            figs.best("inprocess_loop_only"),
            "s",
            common.ratio(figs.best("inprocess_loop_only"), base, "inprocess"),
        )
    )
    budgets = {"dry_run": 10.0, "noop_rerun": 5.0}
    verdicts = []
    for name in ("dry_run_jobs1", "dry_run_auto", "first_run_auto", "noop_rerun_auto"):
        if name not in figs.times:
            continue
        seconds = figs.best(name)
        budget = next((b for prefix, b in budgets.items() if name.startswith(prefix)), None)
        if budget is None:
            text = common.ratio(seconds, base, "inprocess")
        else:
            text = common.ratio(seconds, budget, f"target_{budget:g}s")
            verdicts.append(f"{name} <= {budget:g} s: {verdict(seconds <= budget)}")
        lines.append((name, seconds, "s", text))
    if "first_run_auto_runner" in figs.times:
        runner = figs.best("first_run_auto_runner") / facts["auto"]["steps"]
        lines.append(
            (
                "first_run_in_runner_per_replicate_step",
                runner * 1e6,
                "us",
                common.ratio(
                    runner, figs.best("inprocess_loop_only") / facts["auto"]["steps"], "inprocess_loop_only"
                ),
            )
        )
    for name in ("dry_run_jobs1", "dry_run_auto", "first_run_auto", "noop_rerun_auto"):
        if name in figs.rss:
            # The largest of the repeats: a peak is a peak.
            peak = max(figs.rss[name])
            lines.append((f"peak_rss_{name}", peak, "MB", common.ratio(peak, 1024, "target_1GB")))
            verdicts.append(f"peak_rss_{name} <= 1 GB: {verdict(peak <= 1024)}")

    detail = (
        f"3 conditions x {replicates} replicates x (shared datasource + 1 step): {auto_facts['steps']} "
        f"replicate-steps ({3 * replicates} step outputs + {replicates} shared datasource outputs); auto: "
        f"{auto_facts['segment_jobs']} segment jobs + {tail} tail; jobs1: replicates_per_job 1 at "
        f"{jobs1['replicates']} replicates = {jobs1_jobs} segment jobs, dry run only, fastest of "
        f"{args.jobs1_repeats}; peak RSS from wait4 (the snakemake process or its largest descendant)"
    )
    finish("scale", args, begun, detail, figs, lines, "targets: " + "; ".join(verdicts))


# ----------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="bench", required=True)

    def common_options(p, repeats: int) -> None:
        p.add_argument("--cores", type=int, default=2, help="passed to snakemake --cores")
        p.add_argument("--repeats", type=int, default=repeats, help="runs per figure; the fastest is shown")
        p.add_argument("--raw", action="store_true", help="also print every repeat's figure")
        p.add_argument("--keep", action="store_true", help="keep the work directories under bench/work/")
        p.add_argument(
            "--work-dir",
            type=Path,
            help="where the experiment directories go (default: bench/work/; e.g. a directory in /dev/shm "
            "to take this machine's disk out of the figures)",
        )
        p.add_argument(
            "--workflow-python",
            type=Path,
            help="the Python that runs snakemake (default: bench/.venv-workflow, the README's install)",
        )

    sub.add_parser("setup", help="make bench/.venv-crystallize")
    p = sub.add_parser("tiny", help="3 x 1,000 replicates x 3 steps of microseconds")
    common_options(p, 3)
    p.add_argument("--replicates", type=int, default=1000)
    p.add_argument("--samples", type=int, default=10, help="floats the datasource draws")
    p.add_argument(
        "--per-job",
        default="auto,one",
        help="replicates_per_job values to run: auto, one (a block per segment), N",
    )
    p.add_argument(
        "--workers", type=int, default=2, help="workers of the pool and of Crystallize's process execution"
    )
    p = sub.add_parser("heavy", help="3 x 20 replicates of a 0.2 s busy loop")
    common_options(p, 2)
    p.add_argument("--replicates", type=int, default=20)
    p.add_argument("--seconds", type=float, default=0.2, help="what the busy loop is calibrated to")
    p.add_argument(
        "--iterations", type=int, default=0, help="busy-loop iterations (0: calibrate to --seconds)"
    )
    p.add_argument("--per-job", default="auto,10", help="replicates_per_job values to run: auto, one, N")
    p.add_argument("--workers", type=int, default=2)
    p = sub.add_parser("scale", help="3 x 10,000 replicates: dry run, first run, no-op, peak RSS")
    common_options(p, 2)
    p.add_argument("--replicates", type=int, default=10000)
    p.add_argument("--jobs1-jobs", type=int, default=30000, help="segment jobs of the jobs1 dry run")
    p.add_argument(
        "--jobs1-repeats",
        type=int,
        default=1,
        help="repeats of the slow dry run at one job per replicate x segment (0: skip it)",
    )
    p = sub.add_parser("all", help="tiny, heavy and scale with their defaults")
    common_options(p, 0)
    args = parser.parse_args(argv)

    if args.bench == "setup":
        common.setup_crystallize()
        common.setup_workflow_venv()
        return 0
    if args.bench in ("tiny", "heavy", "all"):
        common.setup_crystallize()
    if args.workflow_python:
        common.WORKFLOW_PYTHON = args.workflow_python
    if args.work_dir:
        common.WORK = args.work_dir.resolve()
    common.setup_workflow_venv()
    common.avoid_slow_slurm_probe()
    if args.bench == "all":
        for name in ("tiny", "heavy", "scale"):
            options = (
                ["--cores", str(args.cores)]
                + (["--raw"] if args.raw else [])
                + (["--keep"] if args.keep else [])
            )
            if args.repeats:
                options += ["--repeats", str(args.repeats)]
            if args.workflow_python:
                options += ["--workflow-python", str(args.workflow_python)]
            if args.work_dir:
                options += ["--work-dir", str(args.work_dir)]
            main([name, *options])
            print()
        return 0
    if min(args.cores, args.repeats, args.replicates) < 1:
        parser.error("--cores, --repeats and --replicates must be at least 1")
    {"tiny": tiny, "heavy": heavy, "scale": scale}[args.bench](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
