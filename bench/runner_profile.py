"""Where a replicate-step's time goes inside the runner: cProfile of block
jobs of the 200,000-replicate-step experiment (perf.py scale), run in this
process as ``python -m repliflow.engine.runner`` runs them, and the cost of
creating one small file on this disk, measured beside it.

    python bench/runner_profile.py [--block 1024] [--top 25] [--keep]

Makes a fresh directory under bench/work/ (the scale experiment's config and
steps, ``replicates_per_job`` = ``--block``, replicates = one block), runs the
datasource block and one condition block (2 x ``--block`` replicate-steps)
under cProfile (in this process: the runner's watched child is replaced by a
direct call), and prints: the blocks' seconds per replicate-step, the top
functions by cumulative time, and a loop creating ``--files`` files with
``os.open(O_CREAT | O_EXCL)`` + write + close (what one output or sidecar
costs the file system, without Python's runner around it).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
import perf  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--block", type=int, default=1024, help="replicates per block (perf.py scale's auto)")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--files", type=int, default=4000, help="files the file-creation loop makes")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--sort", default="cumulative", help="pstats order: cumulative, tottime, ...")
    parser.add_argument(
        "--no-profile", action="store_true", help="time the blocks without cProfile (about 2x faster)"
    )
    args = parser.parse_args()

    from repliflow.core.config import validate_config
    from repliflow.core.plan import build_plan, spec_json
    from repliflow.engine import runner, supervise

    # The runner does its work in a forked child that it watches (engine.supervise);
    # run it here instead, so that cProfile sees it (a bench-only patch).
    runner.supervise = lambda work, *, slots=1, **_: work(supervise.Watch(slots), {}, False)

    config = perf.scale_config(args.block, args.block)
    work = common.make_experiment(config, perf.SCALE_STEPS, prefix="runner-profile-")
    cwd = Path.cwd()
    try:
        os.chdir(work)
        plan = build_plan(validate_config(config), workdir=str(work))
        source = next(s for s in plan.segments.values() if s.parent is None)
        condition = next(s for s in plan.segments.values() if s.parent is not None)
        profiler = cProfile.Profile()
        clock = time.perf_counter()
        steps = 0
        for segment in (source, condition):
            block = plan.blocks(segment)[0]
            manifest = plan.manifest_path(block)
            Path(manifest).parent.mkdir(parents=True, exist_ok=True)
            spec = spec_json(plan.block_spec(block))
            argv = ["--spec", spec, "--manifest", manifest, "--log", f"{manifest}.log"]
            if args.no_profile:
                runner.main(argv)
            else:
                profiler.runcall(runner.main, argv)
            steps += (block.hi - block.lo) * (segment.end - segment.start + 1)
        seconds = time.perf_counter() - clock
        how = "without a profiler" if args.no_profile else "under cProfile"
        print(
            f"# {steps} replicate-steps in {seconds:.2f} s {how}: "
            f"{seconds / steps * 1e6:.0f} us each "
            f"(load average {common.load_average()}; in {work})"
        )
        if not args.no_profile:
            pstats.Stats(profiler).sort_stats(args.sort).print_stats(args.top)

        per_file = common.file_creation_us(args.files)
        print(f"# creating one small file (os.open O_CREAT|O_EXCL, write, close): {per_file:.0f} us")
    finally:
        os.chdir(cwd)
        common.remove_dirs([work], args.keep)
    return 0


if __name__ == "__main__":
    sys.exit(main())
