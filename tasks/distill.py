"""Pipeline step ``distill``: progressive distillation of the student on the sample (steps B, C).

Runs as ``crossadapt distill`` or ``python -m tasks.distill``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from crossadapt.errors import DataError
from tasks.common import exit_with, layout_of, simple_step, write_metrics

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)


def run(params: Params) -> dict[str, Any]:
    """Train the transferred student against the cached teacher logits of the sample."""
    from crossadapt.data.dataset import encode_range
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.distill.progressive import DistillConfig, progressive_distill
    from crossadapt.storage.checkpoint import load_model, save_model_checkpoint
    from crossadapt.training.trainer import set_seed

    layout = layout_of(params)
    student, checkpoint = load_model(layout.student_init_checkpoint)
    schema = FeatureSchema.from_dict(checkpoint.schema, origin=str(checkpoint.path))
    sample = load_sample(layout.sample_file)
    retained_days = params.split.retained_days()
    retained = encode_range(
        layout.data_dir, layout.dataset, retained_days[0], retained_days[-1], schema
    )
    if len(retained) != int(sample["retained_rows"]):
        raise DataError(
            f"{layout.sample_file} was drawn from {int(sample['retained_rows'])} retained rows "
            f"but the retained window now has {len(retained)}; rerun `crossadapt sample`"
        )
    frame = retained.take(sample["row_indices"])

    set_seed(params.seed)
    distill = params.distill
    config = DistillConfig(
        alpha=distill.alpha,
        temperature=distill.temperature,
        epochs_b=distill.epochs_b,
        epochs_c=distill.epochs_c,
        lr_embedding=distill.lr_embedding,
        lr_dense=distill.lr_dense,
        batch_size=distill.batch_size,
        seed=params.seed,
    )
    result = progressive_distill(student, frame, sample["teacher_logits"], config)
    save_model_checkpoint(
        layout.distilled_student_checkpoint,
        student,
        None,
        schema,
        role="student",
        meta={"step": "distill", "train_seconds": result.train_seconds},
    )
    metrics = {
        "rows": len(frame),
        "rows_seen": result.rows_seen,
        "train_seconds": result.train_seconds,
        "loss_b": result.losses.get("B", [None])[-1],
        "loss_c": result.losses.get("C", [None])[-1],
    }
    return write_metrics(layout.metrics_file("distill"), metrics)


def load_sample(path) -> dict[str, np.ndarray]:
    """Arrays of ``sample.npz`` (row indices, cached teacher logits, labels)."""
    try:
        with np.load(path, allow_pickle=False) as content:
            return {name: content[name] for name in content.files}
    except FileNotFoundError:
        raise DataError(f"{path} not found: run `crossadapt sample` first") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path} is unreadable ({error}); rerun `crossadapt sample`") from None


SUBCOMMAND, main = simple_step(
    "distill", "progressive distillation: dense part (step B), then all parameters (step C)", run
)

if __name__ == "__main__":
    exit_with(main)
