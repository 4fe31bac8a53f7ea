"""The Titanic age-normalisation experiment (the default repliflow experiment).

Each replicate samples a few passengers' ages, normalises them against the
whole table's mean and standard deviation times ``scale_factor``, and reports
the spread of the normalised ages. The ``scale_ages`` treatment (factor 1.5)
should widen that spread, and the Welch t-test should say so.

The datasource reads ``passengers.csv``; its contents are not part of the
code hash (only this file's functions are), so a changed table needs a new
``path`` or a bumped parameter to be re-read.
"""

import csv
import statistics
from pathlib import Path

HERE = Path(__file__).parent


def titanic_source(ctx, *, sample_size=3, path=str(HERE / "passengers.csv")):
    with open(path, newline="") as handle:
        ages = [float(row["age"]) for row in csv.DictReader(handle)]
    sample = ctx.rng.choice(ages, size=sample_size, replace=False).tolist()
    return {"ages": sample, "mean": statistics.fmean(ages), "std": statistics.stdev(ages)}


def normalize_age(data, ctx, *, scale_factor=1.0):
    mean, std = data["mean"], data["std"]
    return [(age - mean) / std * scale_factor for age in data["ages"]]


def compute_metrics(data, ctx):
    return {"mean_norm_age": statistics.fmean(data), "std_norm_age": statistics.stdev(data)}
