"""Pipeline step ``shadow-evaluate``: the distilled student against the teacher on held-out days.

Both models are scored on the online days (before any online training) and on the test
days. Runs as ``crossadapt shadow-evaluate`` or ``python -m tasks.shadow_evaluate``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tasks.common import exit_with, layout_of, simple_step, write_metrics

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)


def run(params: Params) -> dict[str, Any]:
    """Compare teacher and distilled student on the online and the test days."""
    layout = layout_of(params)
    split = params.split
    metrics = {
        "online_days": compare_checkpoints(
            params,
            layout.teacher_checkpoint,
            layout.distilled_student_checkpoint,
            split.online_start,
            split.online_end,
        ),
        "test": compare_checkpoints(
            params,
            layout.teacher_checkpoint,
            layout.distilled_student_checkpoint,
            split.test_start,
            split.test_end,
        ),
    }
    return write_metrics(layout.metrics_file("shadow"), metrics)


def compare_checkpoints(params: Params, teacher_path, student_path, start: str, end: str) -> dict:
    """Score two checkpoints on the days ``start..end``, each with its own schema."""
    from crossadapt.data.dataset import encode_range
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.monitoring.evaluation import compare_models
    from crossadapt.storage.checkpoint import load_model
    from crossadapt.training.trainer import predict

    layout = layout_of(params)
    probabilities = {}
    labels = None
    for role, path in (("teacher", teacher_path), ("student", student_path)):
        model, checkpoint = load_model(path)
        schema = FeatureSchema.from_dict(checkpoint.schema, origin=str(path))
        frame = encode_range(layout.data_dir, layout.dataset, start, end, schema)
        probabilities[role] = predict(model, frame)
        labels = frame.label
    return compare_models(labels, probabilities["teacher"], probabilities["student"])


SUBCOMMAND, main = simple_step(
    "shadow-evaluate", "score the distilled student and the teacher on held-out days", run
)

if __name__ == "__main__":
    exit_with(main)
