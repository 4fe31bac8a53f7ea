"""repliflow's statistics: verifiers, effect sizes, corrections and power.

``verifiers`` holds the built-in tests, ``effect`` their effect sizes with
confidence intervals, ``corrections`` the multiple-treatment adjustments and
``power`` the replicate planning; ``scipy.stats`` underneath. This module
holds only names, so planning (which checks names) does not import scipy.
"""

BUILTIN_NAMES = ("welch_t", "student_t", "mann_whitney", "permutation", "bootstrap", "paired_t", "wilcoxon")
PAIRED = frozenset({"paired_t", "wilcoxon"})
RANK_BASED = frozenset({"mann_whitney", "wilcoxon"})
CORRECTIONS = ("holm", "bonferroni", "fdr_bh", "none")
DEFAULT_CORRECTION = "holm"
