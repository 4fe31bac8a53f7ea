"""repliflow's statistics: verifiers, effect sizes, corrections and power.

``builtin`` holds the built-in tests, ``registry`` resolves a hypothesis'
verifier (a built-in or the user's ``module:function``), ``effect`` the
effect sizes with confidence intervals, ``corrections`` the
multiple-treatment adjustments and ``power`` the replicate planning; ``scipy.stats`` underneath. This module
holds only names, so planning (which checks names and parameters) does not
import scipy.
"""

BUILTIN_NAMES = ("welch_t", "student_t", "mann_whitney", "permutation", "bootstrap", "paired_t", "wilcoxon")
PAIRED = frozenset({"paired_t", "wilcoxon"})
RANK_BASED = frozenset({"mann_whitney", "wilcoxon"})
CORRECTIONS = ("holm", "bonferroni", "fdr_bh", "none")
DEFAULT_CORRECTION = "holm"
ALTERNATIVES = ("two-sided", "greater", "less")
# The keyword parameters each built-in verifier takes (the keyword-only
# parameters of its signature, in order), so that planning checks a
# hypothesis' params without importing the verifiers (and scipy);
# tests/unit/test_config.py keeps it equal to the signatures.
BUILTIN_PARAMS = {
    "welch_t": ("alpha", "alternative"),
    "student_t": ("alpha", "alternative"),
    "mann_whitney": ("alpha", "alternative", "method"),
    "permutation": ("alpha", "alternative", "n_resamples", "seed"),
    "bootstrap": ("alpha", "alternative", "n_resamples", "seed"),
    "paired_t": ("alpha", "alternative"),
    "wilcoxon": ("alpha", "alternative", "zero_method", "method"),
}
# The values a built-in's text parameters take (``method`` and ``zero_method``
# are scipy's; a test runs the verifiers with each).
PARAM_CHOICES = {
    "alternative": ALTERNATIVES,
    "method": ("auto", "asymptotic", "exact"),
    "zero_method": ("wilcox", "pratt", "zsplit"),
}
