"""Monte Carlo: bias and variance of two variance estimators across sample sizes.

Each replicate is one Monte Carlo study: it draws ``draws`` normal numbers
(``draws // n`` data sets of size ``n``), applies the estimator to every data
set, and reports how far the estimates sit from the true variance on
average (``bias``), how much they scatter (``variance``) and both together
(``mse``). The default ``draws`` makes a replicate cost about 0.2 s of one
core, so the experiment is CPU-bound and scales with ``--cores``.

The ``unbiased`` estimator divides by ``n - 1``; the maximum-likelihood
estimator ``mle`` divides by ``n`` and is biased by ``-variance / n``, which
the ``bias`` hypothesis must flag at every sample size, while no ``unbiased``
cell may be flagged. (``mle`` still has the smaller mean squared error for
normal data: bias is not the whole story.)
"""

import numpy as np

CHUNK = 500_000  # draws generated at once: bounds memory whatever `draws` is


def population(ctx, *, scale=2.0):
    """The population every data set is drawn from: normal, sd ``scale``."""
    return {"scale": scale, "variance": scale**2}


def simulate(data, ctx, *, n=20, estimator="unbiased", draws=10_000_000):
    """Estimate the variance of ``draws // n`` data sets of size ``n``."""
    ddof = {"unbiased": 1, "mle": 0}[estimator]
    datasets = draws // n
    total = total_sq = 0.0
    done = 0
    while done < datasets:
        size = min(max(1, CHUNK // n), datasets - done)
        sample = ctx.rng.normal(0.0, data["scale"], size=(size, n))
        estimates = sample.var(axis=1, ddof=ddof)
        total += float(estimates.sum())
        total_sq += float(np.square(estimates).sum())
        done += size
    mean = total / datasets
    return {
        "mean": mean,
        "variance": (total_sq - datasets * mean**2) / (datasets - 1),
        "truth": data["variance"],
        "datasets": datasets,
    }


def metrics(data, ctx):
    bias = data["mean"] - data["truth"]
    return {
        "bias": bias,
        "relative_bias": bias / data["truth"],
        "variance": data["variance"],
        "mse": data["variance"] + bias**2,
    }
