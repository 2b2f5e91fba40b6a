"""Pipeline step ``train-teacher``: train the "old production model" on history + retained window.

The teacher's vocabulary is fitted on the history only (its model version was frozen
before the retained window), so ids that first appear in the retained window are OOV
for it. Runs as ``crossadapt train-teacher`` or ``python -m tasks.train_teacher``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from tasks.common import exit_with, field_defs, layout_of, model_config, simple_step, write_metrics

if TYPE_CHECKING:
    from crossadapt.config.params import Params

logger = logging.getLogger(__name__)

VALID_SHARE = 0.1


def run(params: Params) -> dict[str, Any]:
    """Fit the teacher schema, train the teacher, evaluate it on the online and test days."""
    from crossadapt.data.dataset import encode_range, iter_range
    from crossadapt.data.schema import fit_schema
    from crossadapt.models.registry import build_model
    from crossadapt.storage.checkpoint import save_model_checkpoint
    from crossadapt.training.metrics import evaluate_predictions
    from crossadapt.training.trainer import TrainConfig, make_optimizer, predict, set_seed, train

    layout = layout_of(params)
    split = params.split
    started = time.perf_counter()
    fit_end = split.history_days()[-1] if split.history_days() else split.retained_days()[-1]
    fit_start = split.history_start if split.history_days() else split.retained_start
    schema = fit_schema(
        iter_range(layout.data_dir, layout.dataset, fit_start, fit_end),
        field_defs(params),
        params.features.min_count,
        (fit_start, fit_end),
        layout.dataset,
    ).with_embedding_dims(params.teacher.embedding_dim)

    frame = encode_range(
        layout.data_dir, layout.dataset, split.history_start, split.retained_days()[-1], schema
    )
    n_valid = max(1, int(len(frame) * VALID_SHARE))
    train_frame = frame.take(range(len(frame) - n_valid))
    valid_frame = frame.take(range(len(frame) - n_valid, len(frame)))

    set_seed(params.seed)
    teacher = build_model(params.teacher.arch, schema, model_config(params.teacher))
    config = TrainConfig(
        epochs=params.teacher.epochs,
        batch_size=params.teacher.batch_size,
        lr_embedding=params.teacher.lr_embedding,
        lr_dense=params.teacher.lr_dense,
        early_stopping_patience=params.teacher.early_stopping_patience,
        seed=params.seed,
    )
    optimizer = make_optimizer(teacher, config.lr_embedding, config.lr_dense)
    result = train(teacher, train_frame, valid_frame, config, optimizer=optimizer)

    online = encode_range(
        layout.data_dir, layout.dataset, split.online_start, split.online_end, schema
    )
    test = encode_range(layout.data_dir, layout.dataset, split.test_start, split.test_end, schema)
    metrics: dict[str, Any] = {
        "arch": params.teacher.arch,
        "embedding_dim": params.teacher.embedding_dim,
        "train_rows": len(train_frame),
        "valid_rows": len(valid_frame),
        "best_epoch": result.best_epoch,
        "train_seconds": result.train_seconds,
        "online_days": evaluate_predictions(online.label, predict(teacher, online)),
        "test": evaluate_predictions(test.label, predict(teacher, test)),
    }

    schema.save(layout.teacher_schema)
    save_model_checkpoint(
        layout.teacher_checkpoint,
        teacher,
        optimizer,
        schema,
        role="teacher",
        meta={"step": "train_teacher", "fit_range": [fit_start, fit_end], "seed": params.seed},
    )
    metrics["seconds"] = time.perf_counter() - started
    logger.info(
        "teacher %s: AUC %.4f on the online days, %.4f on the test days",
        params.teacher.arch,
        metrics["online_days"]["auc"],
        metrics["test"]["auc"],
    )
    return write_metrics(layout.metrics_file("teacher"), metrics)


SUBCOMMAND, main = simple_step(
    "train-teacher", "train the teacher (the old architecture) on history + retained window", run
)

if __name__ == "__main__":
    exit_with(main)
