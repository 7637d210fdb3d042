"""Edge cases of adbench_hr/metrics/_counting.py first found by mutation testing.

A normal pixel one float32 step above the category's largest defect score: a search for it ends past the
last threshold, a read there must not count it as equal. Nothing else in tests/metrics exercised that path
(only an integration run did).
"""

import numpy as np
import pytest

from adbench_hr.metrics import AnomalyMetrics
from adbench_hr.metrics._counting import NormalCounter

ULP_ABOVE_HALF = np.nextafter(np.float32(0.5), np.float32(1.0))
ULP_ABOVE_QUARTER = np.nextafter(np.float32(0.25), np.float32(1.0))


def _counts(thresholds, normals):
    counter = NormalCounter(thresholds)
    counter.add(normals)
    return counter.counts()


def test_normal_just_above_the_largest_threshold():
    # Two thresholds one ulp apart and a normal one ulp above the largest: its search ends past the last
    # threshold, and the tie check there must not read the last threshold as equal.
    thresholds = np.array([0.25, ULP_ABOVE_QUARTER, 0.5], np.float32)
    normals = np.array([0.0, ULP_ABOVE_HALF, 1.0, 0.5], np.float32)
    below, equal = _counts(thresholds, normals)
    # By hand: below(t) = #normals < t, equal(t) = #normals == t.
    assert below.tolist() == [1, 1, 1]
    assert equal.tolist() == [0, 0, 1]


def test_engine_with_a_normal_one_ulp_above_every_defect_score():
    # Defect pixels 0.25, 0.25 + ulp, 0.5; normal pixels 0, 0.5 + ulp, 1.
    m = np.array([[0.25, 0.0, ULP_ABOVE_QUARTER, 0.0, 0.5, ULP_ABOVE_HALF, 1.0]], np.float32)
    g = np.zeros(m.shape, bool)
    g[0, [0, 2, 4]] = True
    acc = AnomalyMetrics()
    acc.update(m, g)
    got = acc.compute()["metrics"]
    # Normals: 0, 0, 0.5+ulp, 1 (4 pixels). Each defect pixel beats the two zeros and loses to the rest:
    # P-AUROC = 3 * 2 / (3 * 4) = 0.5.
    assert got["p_auroc"] == pytest.approx(0.5, abs=1e-12)
    # Three 1-px defects. Thresholds (descending): 1 -> FPR 1/4, PRO 0; 0.5+ulp -> FPR 2/4, PRO 0;
    # 0.5 -> (2/4, 1/3); 0.25+ulp -> (2/4, 2/3); 0.25 -> (2/4, 1); 0 -> (1, 1).
    # Up to FPR 0.3 the PRO is 0: AUPRO@0.3 = 0.
    assert got["aupro"]["0.3"] == 0.0


@pytest.mark.parametrize(
    ("values", "dtype"),
    [(np.array([0.5 + 1j, 0.25]), "complex128"), (np.array(["0.5", "1"]), "<U3"), (np.array([0.5, None]), "object")],
)
def test_exact_scores_refuses_what_is_not_real_numbers(values, dtype):
    # Converting would drop imaginary parts (with only a warning) or parse text as numbers: refused instead.
    from adbench_hr.metrics import exact_scores

    with pytest.raises(ValueError) as error:
        exact_scores(values)
    assert str(error.value) == f"{dtype} values, not real numbers"
