"""Full-resolution metrics engine (numpy, scipy and OpenCV only; never imports torch).

Use :class:`AnomalyMetrics`: ``update()`` once per test image, then ``compute()``.
"""

from adbench_hr.metrics._counting import check_mask_shape, checked_scores, exact_scores
from adbench_hr.metrics.accumulator import (
    CONNECTIVITY,
    DEFAULT_FPR_LIMITS,
    PRO_THRESHOLD_MODES,
    AnomalyMetrics,
    auroc,
    checked_image_score,
    label_defects,
    limit_key,
)
from adbench_hr.metrics.size_bins import AREA_BIN_EDGES_PX, QUARTILE_NAMES, area_label, size_robustness

__all__ = [
    "AREA_BIN_EDGES_PX",
    "CONNECTIVITY",
    "DEFAULT_FPR_LIMITS",
    "PRO_THRESHOLD_MODES",
    "QUARTILE_NAMES",
    "AnomalyMetrics",
    "area_label",
    "auroc",
    "check_mask_shape",
    "checked_image_score",
    "checked_scores",
    "exact_scores",
    "label_defects",
    "limit_key",
    "size_robustness",
]
