"""repliflow's statistics: verifiers, effect sizes, corrections and power.

``builtin`` holds the built-in tests (``equivalence`` the TOST ones),
``registry`` resolves a hypothesis' verifier (a built-in or the user's
``module:function``), ``effect`` the effect sizes with confidence intervals,
``corrections`` the multiple-comparison adjustments and ``power`` the
replicate planning; ``scipy.stats`` underneath. This module holds only names,
so planning (which checks names and parameters) does not import scipy.
"""

# The tests of a difference (H0: no difference) and the equivalence tests
# (TOST, H0: a difference at least the smallest effect size of interest).
DIFFERENCE_NAMES = (
    "welch_t",
    "student_t",
    "mann_whitney",
    "permutation",
    "bootstrap",
    "paired_t",
    "wilcoxon",
)
EQUIVALENCE = ("tost_welch", "tost_paired")
BUILTIN_NAMES = (*DIFFERENCE_NAMES, *EQUIVALENCE)
PAIRED = frozenset({"paired_t", "wilcoxon", "tost_paired"})
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
    # ``sesoi`` comes from the hypothesis' ``sesoi`` key, never from its params
    "tost_welch": ("alpha", "sesoi"),
    "tost_paired": ("alpha", "sesoi"),
}
# Keywords the aggregate passes from the hypothesis itself, not from ``params``.
FROM_HYPOTHESIS = frozenset({"sesoi"})
# A smallest effect size of interest: in metric units or as a standardised d.
SESOI_KINDS = ("value", "d")
# The values a built-in's text parameters take (``method`` and ``zero_method``
# are scipy's; a test runs the verifiers with each).
PARAM_CHOICES = {
    "alternative": ALTERNATIVES,
    "method": ("auto", "asymptotic", "exact"),
    "zero_method": ("wilcox", "pratt", "zsplit"),
}
