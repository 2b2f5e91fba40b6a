"""Pipeline step ``transfer``: project the teacher's embedding tables into a new student (step A).

Runs as ``crossadapt transfer`` or ``python -m tasks.transfer``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tasks.common import exit_with, layout_of, model_config, simple_step, write_metrics

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)


def run(params: Params) -> dict[str, Any]:
    """Build the student of ``params.student`` from the teacher checkpoint; no training."""
    from crossadapt.data.dataset import iter_range
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.storage.checkpoint import load_model, save_model_checkpoint
    from crossadapt.transfer.student import build_student, retained_token_counts

    layout = layout_of(params)
    teacher, checkpoint = load_model(layout.teacher_checkpoint)
    teacher_schema = FeatureSchema.from_dict(checkpoint.schema, origin=str(checkpoint.path))
    retained_days = params.split.retained_days()
    counts = retained_token_counts(
        iter_range(layout.data_dir, layout.dataset, retained_days[0], retained_days[-1]),
        teacher_schema,
    )
    build = build_student(
        teacher,
        teacher_schema,
        counts,
        params.student.arch,
        params.student.embedding_dim,
        model_config(params.student),
        seed=params.seed,
        min_count=params.features.min_count,
        new_row_init=params.student.new_row_init,
    )
    build.schema.save(layout.student_schema)
    save_model_checkpoint(
        layout.student_init_checkpoint,
        build.model,
        None,
        build.schema,
        role="student",
        meta={"step": "transfer", "teacher_schema_hash": checkpoint.schema_hash},
    )
    metrics = {
        "teacher_arch": checkpoint.arch,
        "student_arch": params.student.arch,
        "student_embedding_dim": params.student.embedding_dim,
        **build.summary(),
    }
    return write_metrics(layout.metrics_file("transfer"), metrics)


SUBCOMMAND, main = simple_step(
    "transfer", "initialise the student from the teacher's embeddings (projection, no data)", run
)

if __name__ == "__main__":
    exit_with(main)
