"""Evaluation report of a migration: per-day curves, drift score, and the test-split table.

Writes one self-contained HTML page (PNG plots embedded as base64, also saved beside it) and the
per-day CSV that ``dvc plots`` reads.
"""

from __future__ import annotations

import base64
import html
import io
import logging
import math
import numbers
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crossadapt.storage.atomic import atomic_write_bytes, atomic_write_text

logger = logging.getLogger(__name__)

PLOTTED_METRICS = (("auc", "AUC"), ("log_loss", "LogLoss"), ("prediction_bias", "Prediction bias"))
TABLE_METRICS = (
    "auc",
    "log_loss",
    "prediction_bias",
    "normalized_entropy",
    "rows",
    "positives",
    "train_seconds",
)


@dataclass
class ReportPaths:
    """Files written by ``write_evaluation_report``."""

    html: Path
    csv: Path
    images: dict[str, Path] = field(default_factory=dict)


def write_evaluation_report(
    out_dir: str | os.PathLike[str],
    daily_rows: Sequence[Mapping[str, Any]],
    final_metrics: Mapping[str, Mapping[str, Any]],
    *,
    baselines: Sequence[str] = (),
    title: str = "CrossAdapt migration: evaluation report",
    gate: Mapping[str, Any] | None = None,
    csv_name: str = "daily_metrics.csv",
) -> ReportPaths:
    """Write ``evaluation_report.html``, the per-day CSV and one PNG per plot into ``out_dir``.

    ``daily_rows``: one dict per online day with ``day`` and ``<model>_<metric>`` keys (as
    produced by ``compare_models``) for the teacher, the student and each name in ``baselines``,
    plus optional ``drift_score`` and ``flagged``. ``final_metrics``: model name to its metrics on
    the test split (keys of ``evaluate_predictions``, optionally ``train_seconds``). ``gate``: an
    optional promotion decision (``GateDecision.to_dict()``) shown at the top.
    """
    start_time = time.perf_counter()
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    rows = sorted(daily_rows, key=lambda row: str(row["day"]))
    models = ["teacher", "student", *baselines]
    logger.info(
        "evaluation report: %d days, models %s, %d final rows",
        len(rows),
        models,
        len(final_metrics),
    )

    csv_path = folder / csv_name
    atomic_write_text(csv_path, _daily_csv(rows))

    images: dict[str, Path] = {}
    figures: list[tuple[str, bytes]] = []
    if rows:
        for metric, label in PLOTTED_METRICS:
            png = _plot_metric(rows, models, metric, label)
            if png is not None:
                images[metric] = folder / f"{metric}.png"
                figures.append((f"{label} per day", png))
        drift_png = _plot_drift(rows)
        if drift_png is not None:
            images["drift_score"] = folder / "drift_score.png"
            figures.append(("Drift score per day (flagged days in red)", drift_png))
        for (_, png), path in zip(figures, images.values(), strict=True):
            atomic_write_bytes(path, png)

    page = _render_html(title, rows, models, final_metrics, figures, gate)
    html_path = folder / "evaluation_report.html"
    atomic_write_text(html_path, page)
    logger.info(
        "evaluation report written to %s (%d images) in %.2f s",
        html_path,
        len(images),
        time.perf_counter() - start_time,
    )
    return ReportPaths(html=html_path, csv=csv_path, images=images)


def _daily_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Render one CSV line per day, ``day`` first, then columns in first-seen order."""
    columns: list[str] = ["day"]
    for row in rows:
        columns.extend(key for key in row if key not in columns)
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join(_csv_cell(row.get(column)) for column in columns))
    return "\n".join(lines) + "\n"


def _csv_cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return str(int(value))
    text = str(value)
    if any(char in text for char in ',"\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def _plot_metric(
    rows: Sequence[Mapping[str, Any]], models: Sequence[str], metric: str, label: str
) -> bytes | None:
    """Plot ``<model>_<metric>`` per day for each model that has it; None if no model has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [str(row["day"]) for row in rows]
    figure, axes = plt.subplots(figsize=(8, 3.2))
    plotted = 0
    for model in models:
        values = [_as_float(row.get(f"{model}_{metric}")) for row in rows]
        if all(math.isnan(value) for value in values):
            continue
        axes.plot(days, values, marker="o", markersize=3, label=model)
        plotted += 1
    if plotted == 0:
        plt.close(figure)
        return None
    if metric == "prediction_bias":
        axes.axhline(0.0, color="grey", linewidth=0.8)
    axes.set_ylabel(label)
    axes.set_xlabel("day")
    axes.legend(loc="best", fontsize="small")
    _thin_ticks(axes, days)
    return _to_png(figure)


def _plot_drift(rows: Sequence[Mapping[str, Any]]) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not any(_is_number(row.get("drift_score")) for row in rows):
        return None
    days = [str(row["day"]) for row in rows]
    scores = [_as_float(row.get("drift_score")) for row in rows]
    colors = ["tab:red" if row.get("flagged") else "tab:blue" for row in rows]
    figure, axes = plt.subplots(figsize=(8, 2.8))
    axes.bar(days, [0.0 if math.isnan(score) else score for score in scores], color=colors)
    axes.set_ylim(0.0, 1.0)
    axes.set_ylabel("drift score")
    axes.set_xlabel("day")
    _thin_ticks(axes, days)
    return _to_png(figure)


def _thin_ticks(axes: Any, days: Sequence[str]) -> None:
    step = max(1, math.ceil(len(days) / 10))
    axes.set_xticks(range(0, len(days), step))
    axes.set_xticklabels(days[::step], rotation=30, ha="right", fontsize="small")


def _to_png(figure: Any) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.tight_layout()
    # Leave the matplotlib version (the Software entry) out of the PNG metadata.
    figure.savefig(buffer, format="png", dpi=100, metadata={"Software": None})
    plt.close(figure)
    return buffer.getvalue()


def _render_html(
    title: str,
    rows: Sequence[Mapping[str, Any]],
    models: Sequence[str],
    final_metrics: Mapping[str, Mapping[str, Any]],
    figures: Sequence[tuple[str, bytes]],
    gate: Mapping[str, Any] | None,
) -> str:
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;margin:2em;max-width:960px}"
        "table{border-collapse:collapse;margin:1em 0}"
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}.flagged{color:#b00020;font-weight:bold}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]

    if gate is not None:
        verdict = "promote the student" if gate.get("promote") else "keep the teacher"
        parts.append(f'<h2>Promotion gate: {html.escape(verdict)}</h2><ul id="gate">')
        for reason in gate.get("reasons", []) or ["all checks passed"]:
            parts.append(f"<li>{html.escape(str(reason))}</li>")
        parts.append("</ul>")

    parts.append('<h2>Test split</h2><table id="final-metrics"><tr><th>model</th>')
    parts.extend(f"<th>{html.escape(metric)}</th>" for metric in TABLE_METRICS)
    parts.append("</tr>")
    for model, metrics in final_metrics.items():
        parts.append(f"<tr><td>{html.escape(model)}</td>")
        parts.extend(f"<td>{_format_cell(metrics.get(metric))}</td>" for metric in TABLE_METRICS)
        parts.append("</tr>")
    parts.append("</table>")

    for caption, png in figures:
        encoded = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )

    flagged = [str(row["day"]) for row in rows if row.get("flagged")]
    parts.append(f"<h2>Online days ({len(rows)})</h2>")
    if flagged:
        parts.append(f'<p class="flagged">Drift flagged on: {html.escape(", ".join(flagged))}</p>')
    columns = [f"{model}_{metric}" for metric, _ in PLOTTED_METRICS for model in models]
    columns = [column for column in columns if any(column in row for row in rows)]
    if any("drift_score" in row for row in rows):
        columns.append("drift_score")
    parts.append('<table id="daily-metrics"><tr><th>day</th>')
    parts.extend(f"<th>{html.escape(column)}</th>" for column in columns)
    parts.append("</tr>")
    for row in rows:
        css = ' class="flagged"' if row.get("flagged") else ""
        parts.append(f"<tr{css}><td>{html.escape(str(row['day']))}</td>")
        parts.extend(f"<td>{_format_cell(row.get(column))}</td>" for column in columns)
        parts.append("</tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def _format_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return str(value)
    if _is_number(value):
        number = float(value)
        return "n/a" if math.isnan(number) else f"{number:.4f}"
    return html.escape(str(value))


def _as_float(value: Any) -> float:
    return float(value) if _is_number(value) else math.nan


def _is_number(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
