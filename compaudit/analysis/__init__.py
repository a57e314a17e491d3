"""Pure numpy/scipy analysis: agreement (CIE/PIE), classes, subgroups, tests.

The public surface is small; everything else lives in private-by-convention
modules and may change.
"""

from compaudit.analysis.agreement import TIE_RULE, cie, modal_predictions, subset_top1
from compaudit.analysis.shift import group_shift
from compaudit.analysis.stats import adjust_pvalues, paired_shift_test, welch_test
from compaudit.analysis.subgroups import LABEL_ATTRIBUTE, group_codes, pie_shares
from compaudit.analysis.topline import correct_matrix, summarize

__all__ = [
    "LABEL_ATTRIBUTE",
    "TIE_RULE",
    "adjust_pvalues",
    "cie",
    "correct_matrix",
    "group_codes",
    "group_shift",
    "modal_predictions",
    "paired_shift_test",
    "pie_shares",
    "subset_top1",
    "summarize",
    "welch_test",
]
