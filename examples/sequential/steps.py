"""Sequential: benchmark a tuned build against the baseline, and stop once it is clear.

Each replicate is one benchmark round on a shared machine: ``machine`` draws
the round's background load, which every build run in that round sees (the
datasource is shared: replicate r of every condition has the same seed), and
``benchmark`` times one build under it. Each build has its own run-to-run
jitter (``build`` picks its stream), and a tuned build is faster by
``speedup`` seconds. The hypothesis is a paired t-test by round, so the
shared load cancels.

With ``sequential: {looks: 5}`` the rounds run in five looks; the tuned
build's speedup is large enough that the comparison crosses its
O'Brien-Fleming boundary at look 2, and the run stops there: rounds past
look 2 are never run. ``null.yaml`` adds a rebuilt-but-unchanged build
(``speedup`` 0), which has no boundary to cross: that experiment runs all
five looks.
"""

import numpy as np


def machine(ctx, *, load_sd=2.0):
    """The round's background load, in seconds added to every run."""
    return {"load": float(ctx.rng.normal(0.0, load_sd))}


def benchmark(data, ctx, *, base=30.0, speedup=0.0, jitter=1.0, build=0):
    """One timed run of a build: its runtime in seconds."""
    own = np.random.default_rng([ctx.step_seed, build])  # this build's run-to-run jitter
    runtime = base - speedup + data["load"] + float(own.normal(0.0, jitter))
    return {"runtime": runtime}
