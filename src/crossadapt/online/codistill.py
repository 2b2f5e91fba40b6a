"""One online day of asymmetric co-distillation between the teacher and the student.

The student learns every batch from labels and the teacher's logits; the teacher learns
from labels only and applies its summed gradients every k-th batch.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from crossadapt.errors import ParamsError, SchemaError, TrainingDiverged

OOV_INDEX = 1

if TYPE_CHECKING:
    import torch

    from crossadapt.data.encoding import EncodedFrame
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.models.base import CTRModel
    from crossadapt.models.batch import Batch

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CoDistillConfig:
    """Settings of one online day (params.yaml ``online:`` after drift adaptation).

    ``teacher_update_interval`` is k: the teacher's optimizer steps every k-th batch.
    0 freezes the teacher (k = infinity), 1 is symmetric co-training. A ``student_kd``
    of False trains the student on labels only (the scratch baseline).
    """

    batch_size: int = 4096
    alpha: float = 0.7
    temperature: float = 4.0
    replay_ratio: float = 0.1
    teacher_update_interval: int = 10
    reverse_kd_weight: float = 0.0
    student_kd: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ParamsError(f"online.alpha must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0.0:
            raise ParamsError(f"online.temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.replay_ratio <= 1.0:
            raise ParamsError(f"online.replay_ratio must be in [0, 1], got {self.replay_ratio}")
        if self.teacher_update_interval < 0:
            raise ParamsError(
                "online.teacher_update_interval must be >= 0 (0 freezes the teacher), "
                f"got {self.teacher_update_interval}"
            )
        if self.reverse_kd_weight < 0.0:
            raise ParamsError(
                f"online.reverse_kd_weight must be >= 0, got {self.reverse_kd_weight}"
            )
        if self.batch_size < 1:
            raise ParamsError(f"online.batch_size must be >= 1, got {self.batch_size}")


@dataclass
class CoDistillResult:
    """Batch and row counts, teacher steps, mean losses and time of one co-distillation day."""

    batches: int = 0
    rows: int = 0
    replay_rows: int = 0
    teacher_steps: int = 0
    student_loss: float = float("nan")
    teacher_loss: float = float("nan")
    train_seconds: float = 0.0
    losses: list[tuple[float, float]] = field(default_factory=list)


def codistill_day(
    teacher: CTRModel,
    student: CTRModel,
    teacher_optimizer: torch.optim.Optimizer | None,
    student_optimizer: torch.optim.Optimizer,
    day_frame: EncodedFrame,
    replay_frame: EncodedFrame | None,
    config: CoDistillConfig,
    day: str = "",
    teacher_view: Callable[[Batch], Batch] | None = None,
) -> CoDistillResult:
    """Stream ``day_frame`` in time order and update both models (asymmetric co-distillation).

    Each batch of the day is joined with ``round(batch_rows * replay_ratio)`` rows drawn
    uniformly with replacement from ``replay_frame`` (the retained window). Losses:

    - student: ``kd_loss(z_s, z_t.detach(), y, alpha, T)`` every batch;
    - teacher: ``BCE(sigmoid(z_t), y)`` (plus ``reverse_kd_weight * kd_loss(z_t, z_s.detach(),
      y, 1, T)`` when that option is on). Gradients accumulate over batches. The optimizer
      steps after every k-th batch, applying the sum of k batches' gradients, and once more
      at the end of the day for the remaining batches.

    ``day_frame`` and ``replay_frame`` are encoded with the student's schema;
    ``teacher_view`` (see :func:`teacher_view_of`) maps a batch to the teacher's indices.

    Source: CrossAdapt (Wu et al., arXiv 2602.01775), reference defaults alpha 0.7, T 4,
    replay 0.1, k 10. Raises TrainingDiverged naming the day and batch when a loss is not
    finite; the caller keeps the previous checkpoints in that case.
    """
    import torch
    import torch.nn.functional as functional

    from crossadapt.distill.loss import kd_loss
    from crossadapt.models.batch import Batch

    generator = np.random.default_rng(config.seed)
    result = CoDistillResult()
    started = time.perf_counter()
    k = config.teacher_update_interval
    teacher_trains = teacher_optimizer is not None and k > 0
    replay_rows = len(replay_frame) if replay_frame is not None else 0

    teacher.train(teacher_trains)
    student.train()
    for parameter in teacher.parameters():
        parameter.requires_grad_(teacher_trains)
    if teacher_trains:
        teacher_optimizer.zero_grad(set_to_none=True)

    student_total, teacher_total = 0.0, 0.0
    for batch_index, start in enumerate(range(0, len(day_frame), config.batch_size)):
        indices = np.arange(start, min(len(day_frame), start + config.batch_size))
        batch = Batch.from_encoded(day_frame, indices)
        n_replay = round(len(indices) * config.replay_ratio) if replay_rows else 0
        if n_replay:
            replay_indices = generator.integers(0, replay_rows, size=n_replay)
            batch = _concat_batches(batch, Batch.from_encoded(replay_frame, replay_indices))

        teacher_batch = teacher_view(batch) if teacher_view is not None else batch
        if teacher_trains:
            teacher_logits = teacher(teacher_batch)
        else:
            with torch.no_grad():
                teacher_logits = teacher(teacher_batch)
        student_logits = student(batch)

        if config.student_kd:
            student_loss = kd_loss(
                student_logits,
                teacher_logits.detach(),
                batch.label,
                config.alpha,
                config.temperature,
            )
        else:
            student_loss = functional.binary_cross_entropy_with_logits(student_logits, batch.label)
        _check_finite("student", student_loss, day, batch_index)
        student_optimizer.zero_grad(set_to_none=True)
        student_loss.backward()
        student_optimizer.step()

        teacher_loss = functional.binary_cross_entropy_with_logits(
            teacher_logits.detach() if not teacher_trains else teacher_logits, batch.label
        )
        if teacher_trains:
            if config.reverse_kd_weight > 0.0:
                teacher_loss = teacher_loss + config.reverse_kd_weight * kd_loss(
                    teacher_logits,
                    student_logits.detach(),
                    batch.label,
                    1.0,
                    config.temperature,
                )
            _check_finite("teacher", teacher_loss, day, batch_index)
            teacher_loss.backward()
            if (batch_index + 1) % k == 0:
                teacher_optimizer.step()
                teacher_optimizer.zero_grad(set_to_none=True)
                result.teacher_steps += 1

        rows = len(batch.label)
        student_total += student_loss.item() * rows
        teacher_total += teacher_loss.item() * rows
        result.losses.append((student_loss.item(), teacher_loss.item()))
        result.batches += 1
        result.rows += len(indices)
        result.replay_rows += n_replay

    # The gradients of the day's last (batches mod k) batches are applied in one more step,
    # so a day with fewer than k batches still updates the teacher.
    if teacher_trains and result.batches % k:
        teacher_optimizer.step()
        teacher_optimizer.zero_grad(set_to_none=True)
        result.teacher_steps += 1
    for parameter in teacher.parameters():
        parameter.requires_grad_(True)

    seen = result.rows + result.replay_rows
    result.student_loss = student_total / max(seen, 1)
    result.teacher_loss = teacher_total / max(seen, 1)
    result.train_seconds = time.perf_counter() - started
    logger.info(
        "co-distillation %s: %d batches, %d day rows + %d replay rows, %d teacher steps, "
        "student loss %.5f, teacher loss %.5f, %.1f s",
        day or "(day)",
        result.batches,
        result.rows,
        result.replay_rows,
        result.teacher_steps,
        result.student_loss,
        result.teacher_loss,
        result.train_seconds,
    )
    return result


def teacher_view_of(
    teacher_schema: FeatureSchema, student_schema: FeatureSchema
) -> Callable[[Batch], Batch] | None:
    """Return a function that maps a student-encoded batch to the teacher's indices.

    The student's vocabulary of each field is the teacher's followed by ids new in the
    retained window, so a token keeps its row and a new id (row >= the teacher's vocab
    size) is the teacher's OOV row 1. Returns None when both schemas are equal.
    """
    import torch

    if teacher_schema.hash() == student_schema.hash():
        return None
    for teacher_field, student_field in zip(
        teacher_schema.fields, student_schema.fields, strict=True
    ):
        if teacher_field.name != student_field.name or (
            tuple(student_field.vocabulary[: len(teacher_field.vocabulary)])
            != tuple(teacher_field.vocabulary)
        ):
            raise SchemaError(
                f"field {student_field.name!r}: the student's vocabulary does not start with "
                "the teacher's; build the student with `crossadapt transfer` from this teacher"
            )

    def sizes(fields: list) -> torch.Tensor:
        return torch.tensor([spec.vocab_size for spec in fields], dtype=torch.long)

    categorical_sizes = sizes(teacher_schema.categorical_fields())
    multi_sizes = sizes(teacher_schema.multi_valued_fields()).view(1, -1, 1)

    def view(batch: Batch) -> Batch:
        categorical = torch.where(
            batch.categorical >= categorical_sizes, OOV_INDEX, batch.categorical
        )
        multi_valued = batch.multi_valued
        if multi_valued.numel():
            multi_valued = torch.where(multi_valued >= multi_sizes, OOV_INDEX, multi_valued)
        return batch._replace(categorical=categorical, multi_valued=multi_valued)

    return view


def _concat_batches(first: Batch, second: Batch) -> Batch:
    import torch

    return type(first)(*(torch.cat([a, b]) for a, b in zip(first, second, strict=True)))


def _check_finite(role: str, loss: torch.Tensor, day: str, batch_index: int) -> None:
    value = loss.item()
    if not math.isfinite(value):
        raise TrainingDiverged(
            f"{role} loss is {value} on day {day or '(unknown)'} at batch {batch_index}; the "
            "day's checkpoints were not written. Lower online.lr_dense / online.lr_embedding "
            "or inspect that day's partition for extreme values, then rerun the day"
        )
