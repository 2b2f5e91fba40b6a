"""Drift of a day against its reference window: data drift, teacher prediction drift, label shift.

Uses Evidently 0.7 for the per-feature tests; produces the day's HTML and JSON reports and the
drift score that sets the online weights.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crossadapt.monitoring.validation import FeatureColumns
from crossadapt.online.adaptation import DriftScoreWeights, drift_score
from crossadapt.storage.atomic import atomic_path, atomic_write_json, atomic_write_text
from crossadapt.training.metrics import prediction_bias

logger = logging.getLogger(__name__)

# Rows kept per frame for the Evidently report, so a large day stays fast: with two frames of
# 1M rows x 26 columns, compute_drift took 24 s including the HTML report (2 busy CPU cores).
DEFAULT_SAMPLE_ROWS = 50_000
TEACHER_PROB_COLUMN = "teacher_prob"

# Categorical columns keep their most frequent values and pool the rest. On raw ids
# (thousands of values, a few thousand rows a day) Jensen-Shannon distance on every value is
# dominated by sampling noise: two samples of one distribution gave 0.38 against a threshold
# of 0.1 (1000 values, 2000 rows). New ids still show up, as a larger OTHER share.
DEFAULT_MAX_CATEGORIES = 20
OTHER_CATEGORY = "__other__"
MISSING_CATEGORY = "__missing__"

# Evidently methods whose value is a p-value (drift when value < threshold); for the others
# (distances, divergences, PSI) drift is value >= threshold. Names as evidently 0.7.23 reports them.
PVALUE_METHODS = frozenset(
    {
        "K-S p_value",
        "chi-square p_value",
        "Z-test p_value",
        "Fisher's Exact test",
        "g_test",
        "Mann-Whitney U-rank test",
        "Anderson-Darling",
        "Cramer-von Mises",
        "Epps-Singleton",
        "t_test",
        "empirical_mmd",
    }
)


@dataclass(frozen=True)
class FeatureDrift:
    """Drift test of one column: Evidently's method, its p-value or distance, and the verdict."""

    method: str
    value: float
    threshold: float
    drifted: bool


@dataclass
class DriftResult:
    """Drift of one day against its reference, as stored in ``drift.json``."""

    share_drifted: float
    per_feature: dict[str, FeatureDrift]
    prediction_drift: float | None
    positive_rate_ref: float | None
    positive_rate_cur: float | None
    teacher_bias: float | None
    drift_score: float
    flagged: bool
    drifted_count: int = 0
    evidently_share_drifted: float | None = None
    prediction_drift_test: FeatureDrift | None = None
    skipped_columns: dict[str, str] = field(default_factory=dict)
    rows_ref: int = 0
    rows_cur: int = 0
    sampled_rows_ref: int = 0
    sampled_rows_cur: int = 0
    seconds: float = 0.0
    html_path: Path | None = None
    json_path: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["html_path"] = str(self.html_path) if self.html_path else None
        data["json_path"] = str(self.json_path) if self.json_path else None
        return _finite_or_none(data)


def population_stability_index(
    reference: np.ndarray, current: np.ndarray, bins: int = 10, eps: float = 1e-4
) -> float:
    """PSI of ``current`` against ``reference`` on quantile bins of the reference.

    ``PSI = sum_b (c_b - r_b) * ln(c_b / r_b)``, where ``r_b`` and ``c_b`` are the shares of rows
    in bin ``b`` (edges: the reference's deciles by default, duplicates merged), each floored
    at ``eps``. Source: Siddiqi, "Credit Risk Scorecards" (2006), ch. 8. 0 for equal
    distributions; 0.1 to 0.25 is commonly read as a moderate shift, above 0.25 as a large one.
    """
    reference = np.asarray(reference, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    reference = reference[np.isfinite(reference)]
    current = current[np.isfinite(current)]
    if reference.size == 0 or current.size == 0:
        return float("nan")

    edges = np.unique(np.quantile(reference, np.linspace(0.0, 1.0, bins + 1)[1:-1]))
    reference_share = np.bincount(
        np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1
    )
    current_share = np.bincount(
        np.searchsorted(edges, current, side="right"), minlength=edges.size + 1
    )
    reference_share = np.maximum(reference_share / reference.size, eps)
    current_share = np.maximum(current_share / current.size, eps)
    return float(
        np.sum((current_share - reference_share) * np.log(current_share / reference_share))
    )


def compute_drift(
    reference_df: pd.DataFrame,
    current_df: pd.DataFrame,
    columns: FeatureColumns,
    teacher_probs_ref: np.ndarray | None = None,
    teacher_probs_cur: np.ndarray | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    drift_threshold: float = 0.5,
    statistical_threshold: float = 0.05,
    weights: DriftScoreWeights | None = None,
    max_rows: int = DEFAULT_SAMPLE_ROWS,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    seed: int = 0,
) -> DriftResult:
    """Compare the day's frame with the reference frame and reduce the comparison to a drift score.

    - Evidently ``DataDriftPreset`` over the feature columns. Categorical and multi-valued
      columns, ids included, are declared categorical, and numeric ones numerical. Each frame is
      cut to at most ``max_rows`` rows, a uniform sample without replacement drawn with
      ``seed`` in row order.
    - Each categorical column keeps its ``max_categories`` most frequent values, ranked by mean
      share in the two frames. Other values become ``__other__`` and nulls ``__missing__``, so
      id columns are tested on their head and on the share of rare or new ids.
    - Evidently picks each column's method by size (a p-value test up to 1000 rows, a distance
      above). A p-value test counts as drift below ``statistical_threshold``, a distance at or
      above Evidently's threshold for it (0.1). ``share_drifted`` is the share of drifted
      feature columns. The HTML report shows Evidently's own verdicts at its 0.05 p-value
      default, which match ours at the default ``statistical_threshold``.
    - Teacher prediction drift: PSI of the teacher's probabilities, reference vs day, on all rows,
      plus Evidently's ``ValueDrift`` test of the same column (shown in the report).
    - Positive rate of the reference and of the day, and the teacher's prediction bias on the day
      (``mean(p) / mean(y) - 1``, NaN on a day without positives, which counts as full drift).
    - ``drift_score`` (see ``crossadapt.online.adaptation.drift_score``); ``flagged`` when it is
      above ``drift_threshold``.

    With ``out_dir`` writes ``drift_report.html`` (Evidently, 4 to 6 MB), ``drift_report.json``
    (Evidently snapshot) and ``drift.json`` (this result), each atomically.
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    start_time = time.perf_counter()
    logger.info(
        "drift: reference %d rows, current %d rows, %d feature columns",
        len(reference_df),
        len(current_df),
        len(columns.features),
    )

    skipped: dict[str, str] = {}
    features: list[str] = []
    for name in columns.features:
        if name not in reference_df.columns or name not in current_df.columns:
            skipped[name] = "missing in the reference or the current frame"
        elif reference_df[name].notna().sum() == 0 or current_df[name].notna().sum() == 0:
            skipped[name] = "no non-null value in the reference or the current frame"
        else:
            features.append(name)
    for name, reason in skipped.items():
        logger.warning("drift: column %r left out: %s", name, reason)

    has_teacher = teacher_probs_ref is not None and teacher_probs_cur is not None
    for probs, frame, role in (
        (teacher_probs_ref, reference_df, "reference"),
        (teacher_probs_cur, current_df, "current"),
    ):
        if probs is not None and len(probs) != len(frame):
            raise ValueError(
                f"teacher probabilities for the {role} frame have {len(probs)} values "
                f"for {len(frame)} rows; pass one probability per row, in row order"
            )
    reference_sample, reference_positions = _sample(reference_df, max_rows, seed)
    current_sample, current_positions = _sample(current_df, max_rows, seed + 1)
    reference_sample = reference_sample[features].copy()
    current_sample = current_sample[features].copy()
    if has_teacher:
        reference_sample[TEACHER_PROB_COLUMN] = np.asarray(teacher_probs_ref, dtype=np.float64)[
            reference_positions
        ]
        current_sample[TEACHER_PROB_COLUMN] = np.asarray(teacher_probs_cur, dtype=np.float64)[
            current_positions
        ]

    categorical = [
        name for name in features if name in columns.categorical or name in columns.multi_valued
    ]
    numerical = [name for name in features if name in columns.numeric]
    if has_teacher:
        numerical.append(TEACHER_PROB_COLUMN)
    for name in categorical:
        reference_sample[name], current_sample[name] = _pool_categories(
            reference_sample[name], current_sample[name], max_categories
        )
    definition = DataDefinition(categorical_columns=categorical, numerical_columns=numerical)

    per_feature: dict[str, FeatureDrift] = {}
    prediction_test = None
    evidently_share = None
    snapshot = None
    if features or has_teacher:
        metrics: list[Any] = []
        if features:
            metrics.append(DataDriftPreset(columns=features))
        if has_teacher:
            metrics.append(ValueDrift(column=TEACHER_PROB_COLUMN))
        snapshot = Report(metrics).run(
            reference_data=Dataset.from_pandas(reference_sample, data_definition=definition),
            current_data=Dataset.from_pandas(current_sample, data_definition=definition),
        )
        evidently_share, per_feature = _parse_snapshot(snapshot.dict(), statistical_threshold)
        prediction_test = per_feature.pop(TEACHER_PROB_COLUMN, None)
    drifted_count = sum(test.drifted for test in per_feature.values())
    share_drifted = drifted_count / len(per_feature) if per_feature else 0.0

    prediction_drift = None
    teacher_bias = None
    if has_teacher:
        prediction_drift = population_stability_index(
            np.asarray(teacher_probs_ref), np.asarray(teacher_probs_cur)
        )
    positive_rate_ref = _positive_rate(reference_df, columns.label)
    positive_rate_cur = _positive_rate(current_df, columns.label)
    if teacher_probs_cur is not None and columns.label in current_df.columns:
        teacher_bias = prediction_bias(
            current_df[columns.label].to_numpy(dtype=np.float64), np.asarray(teacher_probs_cur)
        )

    score = drift_score(
        share_drifted,
        prediction_drift=prediction_drift,
        positive_rate_ref=positive_rate_ref,
        positive_rate_cur=positive_rate_cur,
        teacher_bias=teacher_bias,
        weights=weights,
    )
    result = DriftResult(
        share_drifted=share_drifted,
        per_feature=per_feature,
        prediction_drift=prediction_drift,
        positive_rate_ref=positive_rate_ref,
        positive_rate_cur=positive_rate_cur,
        teacher_bias=teacher_bias,
        drift_score=score,
        flagged=score > drift_threshold,
        drifted_count=drifted_count,
        evidently_share_drifted=evidently_share,
        prediction_drift_test=prediction_test,
        skipped_columns=skipped,
        rows_ref=len(reference_df),
        rows_cur=len(current_df),
        sampled_rows_ref=len(reference_sample),
        sampled_rows_cur=len(current_sample),
    )

    if out_dir is not None:
        folder = Path(out_dir)
        folder.mkdir(parents=True, exist_ok=True)
        if snapshot is not None:
            result.html_path = folder / "drift_report.html"
            result.json_path = folder / "drift_report.json"
            with atomic_path(result.html_path) as tmp:
                snapshot.save_html(str(tmp))
            atomic_write_text(result.json_path, snapshot.json())
    result.seconds = time.perf_counter() - start_time
    if out_dir is not None:
        atomic_write_json(Path(out_dir) / "drift.json", result.to_dict())

    logger.info(
        "drift: share_drifted=%.3f (%d of %d), prediction PSI=%s, positive rate %s -> %s, "
        "teacher bias=%s, drift_score=%.3f flagged=%s in %.2f s",
        share_drifted,
        drifted_count,
        len(per_feature),
        _format(prediction_drift),
        _format(positive_rate_ref),
        _format(positive_rate_cur),
        _format(teacher_bias),
        score,
        result.flagged,
        result.seconds,
    )
    return result


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Sample at most ``max_rows`` rows (uniform, no replacement, in order) and their positions."""
    if len(frame) <= max_rows:
        return frame, np.arange(len(frame))
    positions = np.sort(
        np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False)
    )
    return frame.iloc[positions], positions


def _pool_categories(
    reference: pd.Series, current: pd.Series, max_categories: int
) -> tuple[pd.Series, pd.Series]:
    """Keep the ``max_categories`` most frequent values; map others to OTHER, nulls to MISSING."""
    reference = reference.astype("string")
    current = current.astype("string")
    # Ranked on both frames together: a head picked on the reference alone over-counts values that
    # are frequent in the reference sample by chance, which reads as drift on equal distributions.
    counts = reference.value_counts(normalize=True).add(
        current.value_counts(normalize=True), fill_value=0.0
    )
    head = set(counts.sort_values(ascending=False, kind="stable").index[:max_categories])

    def pool(values: pd.Series) -> pd.Series:
        pooled = values.where(values.isin(head), OTHER_CATEGORY)
        return pooled.where(values.notna(), MISSING_CATEGORY).astype(object)

    return pool(reference), pool(current)


def _parse_snapshot(
    snapshot: dict[str, Any], pvalue_threshold: float
) -> tuple[float | None, dict[str, FeatureDrift]]:
    """Read Evidently's drifted-columns share and each column's test from an Evidently 0.7 snapshot.

    A p-value test is judged against ``pvalue_threshold``; any other method keeps the threshold
    Evidently reports for it.
    """
    share = None
    per_column: dict[str, FeatureDrift] = {}
    for metric in snapshot["metrics"]:
        config = metric.get("config", {})
        kind = str(config.get("type", ""))
        if kind.endswith("DriftedColumnsCount"):
            share = float(metric["value"]["share"])
        elif kind.endswith("ValueDrift"):
            method = str(config.get("method"))
            value = float(metric["value"])
            if method in PVALUE_METHODS:
                threshold = pvalue_threshold
                drifted = value < threshold
            else:
                threshold = float(config.get("threshold"))
                drifted = value >= threshold
            per_column[str(config["column"])] = FeatureDrift(
                method=method, value=value, threshold=threshold, drifted=bool(drifted)
            )
    return share, per_column


def _positive_rate(frame: pd.DataFrame, label: str) -> float | None:
    if label not in frame.columns or len(frame) == 0:
        return None
    return float(frame[label].mean())


def _format(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _finite_or_none(value: Any) -> Any:
    """Replace NaN/inf floats by None (strict JSON), recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value
