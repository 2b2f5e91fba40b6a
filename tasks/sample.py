"""Pipeline step ``sample``: draw D_rep from the retained window, cache the teacher's logits.

Runs as ``crossadapt sample`` or ``python -m tasks.sample``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from crossadapt.storage.atomic import atomic_path
from tasks.common import exit_with, layout_of, simple_step, write_metrics

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)


def run(params: Params) -> dict[str, Any]:
    """Sample the retained window with ``params.sampling``; store row indices + teacher logits."""
    from crossadapt.data.dataset import encode_range
    from crossadapt.distill.progressive import teacher_logits
    from crossadapt.distill.sampling import sample_indices
    from crossadapt.storage.checkpoint import load_model

    layout = layout_of(params)
    started = time.perf_counter()
    teacher, checkpoint = load_model(layout.teacher_checkpoint)
    schema = _schema_of(checkpoint)
    retained_days = params.split.retained_days()
    retained = encode_range(
        layout.data_dir, layout.dataset, retained_days[0], retained_days[-1], schema
    )

    sampling = params.sampling
    probabilities = None
    if sampling.strategy == "uncertainty":
        all_logits = teacher_logits(teacher, retained)
        probabilities = 1.0 / (1.0 + np.exp(-all_logits.astype(np.float64)))
    indices = sample_indices(
        len(retained),
        retained.label,
        retained.timestamp,
        sampling.strategy,
        1.0 if sampling.strategy == "none" else sampling.ratio,
        params.seed,
        positive_rate=sampling.positive_rate,
        chunk_rows=sampling.chunk_rows,
        teacher_probs=probabilities,
    )
    logits = teacher_logits(teacher, retained.take(indices))

    with atomic_path(layout.sample_file) as tmp, open(tmp, "wb") as handle:
        np.savez(
            handle,
            row_indices=indices.astype(np.int64),
            teacher_logits=logits.astype(np.float32),
            label=retained.label[indices],
            retained_rows=np.int64(len(retained)),
            teacher_schema_hash=np.array(checkpoint.schema_hash),
        )
    metrics = {
        "strategy": sampling.strategy,
        "retained_rows": len(retained),
        "sampled_rows": len(indices),
        "unique_rows": len(np.unique(indices)),
        "sample_positive_rate": float(retained.label[indices].mean()),
        "retained_positive_rate": float(retained.label.mean()),
        "seconds": time.perf_counter() - started,
    }
    logger.info(
        "sampled %d of %d retained rows (%s), positive rate %.3f",
        metrics["sampled_rows"],
        metrics["retained_rows"],
        sampling.strategy,
        metrics["sample_positive_rate"],
    )
    return write_metrics(layout.metrics_file("sample"), metrics)


def _schema_of(checkpoint):
    from crossadapt.data.schema import FeatureSchema

    return FeatureSchema.from_dict(checkpoint.schema, origin=str(checkpoint.path))


SUBCOMMAND, main = simple_step(
    "sample", "sample the retained window and cache the teacher's logits on the sample", run
)

if __name__ == "__main__":
    exit_with(main)
