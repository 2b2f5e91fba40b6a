"""Progressive distillation: step B trains the student's dense part, step C trains all of it.

Step A, the embedding transfer, happens before (crossadapt.transfer). The teacher is frozen
in this stage, so its logits on the sampled retained window are computed once and cached.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from crossadapt.errors import ParamsError, TrainingDiverged

if TYPE_CHECKING:
    import torch

    from crossadapt.data.encoding import EncodedFrame
    from crossadapt.models.base import CTRModel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistillConfig:
    """Settings of steps B and C (params.yaml ``distill:``)."""

    alpha: float = 0.7
    temperature: float = 4.0
    epochs_b: int = 1
    epochs_c: int = 1
    lr_embedding: float = 0.1
    lr_dense: float = 1e-3
    batch_size: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise ParamsError(f"distill.alpha must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0.0:
            raise ParamsError(f"distill.temperature must be > 0, got {self.temperature}")
        if self.epochs_b < 0 or self.epochs_c < 0:
            raise ParamsError(
                f"distill.epochs_b and distill.epochs_c must be >= 0, "
                f"got {self.epochs_b} and {self.epochs_c}"
            )
        if self.batch_size < 1:
            raise ParamsError(f"distill.batch_size must be >= 1, got {self.batch_size}")


@dataclass
class DistillResult:
    """Losses per epoch of each step and the training wall time in seconds."""

    losses: dict[str, list[float]] = field(default_factory=dict)
    train_seconds: float = 0.0
    rows_seen: int = 0


def teacher_logits(teacher: CTRModel, frame: EncodedFrame, batch_size: int = 8192) -> np.ndarray:
    """Compute the frozen teacher's logits on ``frame`` (eval mode, no gradients), float32 (N,)."""
    import torch

    from crossadapt.models.batch import Batch

    teacher.eval()
    out = np.empty(len(frame), dtype=np.float32)
    with torch.no_grad():
        for start in range(0, len(frame), batch_size):
            indices = np.arange(start, min(len(frame), start + batch_size))
            batch = Batch.from_encoded(frame, indices)
            out[indices] = teacher(batch).float().numpy()
    return out


def progressive_distill(
    student: CTRModel,
    frame: EncodedFrame,
    cached_teacher_logits: np.ndarray,
    config: DistillConfig,
) -> DistillResult:
    """Run step B (embeddings frozen, dense part trained) then step C (all parameters trained).

    Both steps minimise the binary knowledge-distillation loss of
    crossadapt.distill.loss.kd_loss against ``cached_teacher_logits`` (one per row of
    ``frame``). Step B uses Adam on the dense parameters with ``lr_dense``; step C uses
    Adam with ``lr_embedding`` for the embedding tables and ``lr_dense`` for the rest
    (reference defaults of CrossAdapt, arXiv 2602.01775: T = 4, alpha = 0.7, one epoch each).
    Setting ``epochs_b = 0`` gives plain logit distillation of the whole network.
    """
    import torch

    from crossadapt.training.trainer import make_optimizer

    if len(cached_teacher_logits) != len(frame):
        raise ValueError(
            f"cached teacher logits have {len(cached_teacher_logits)} rows, "
            f"the frame has {len(frame)}"
        )
    result = DistillResult()
    started = time.perf_counter()
    generator = np.random.default_rng(config.seed)

    if config.epochs_b > 0:
        for parameter in student.embedding_parameters():
            parameter.requires_grad_(False)
        optimizer_b = torch.optim.Adam(student.dense_parameters(), lr=config.lr_dense)
        result.losses["B"] = _run_epochs(
            "B", student, optimizer_b, frame, cached_teacher_logits, config, generator, result
        )
        for parameter in student.embedding_parameters():
            parameter.requires_grad_(True)

    if config.epochs_c > 0:
        optimizer_c = make_optimizer(student, config.lr_embedding, config.lr_dense)
        result.losses["C"] = _run_epochs(
            "C", student, optimizer_c, frame, cached_teacher_logits, config, generator, result
        )

    result.train_seconds = time.perf_counter() - started
    logger.info(
        "progressive distillation done: %d rows seen, %.1f s, losses %s",
        result.rows_seen,
        result.train_seconds,
        result.losses,
    )
    return result


def _run_epochs(
    step: str,
    student: CTRModel,
    optimizer: torch.optim.Optimizer,
    frame: EncodedFrame,
    cached_teacher_logits: np.ndarray,
    config: DistillConfig,
    generator: np.random.Generator,
    result: DistillResult,
) -> list[float]:
    import torch

    from crossadapt.distill.loss import kd_loss
    from crossadapt.models.batch import Batch

    epochs = config.epochs_b if step == "B" else config.epochs_c
    epoch_losses: list[float] = []
    student.train()
    for epoch in range(epochs):
        order = generator.permutation(len(frame))
        total, rows = 0.0, 0
        for batch_index, start in enumerate(range(0, len(frame), config.batch_size)):
            indices = order[start : start + config.batch_size]
            batch = Batch.from_encoded(frame, indices)
            targets = torch.from_numpy(cached_teacher_logits[indices])
            loss = kd_loss(student(batch), targets, batch.label, config.alpha, config.temperature)
            if not math.isfinite(loss.item()):
                raise TrainingDiverged(
                    f"step {step} loss is {loss.item()} at epoch {epoch}, batch {batch_index}; "
                    "lower distill.lr_embedding / distill.lr_dense or check the sample for "
                    "extreme values"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(indices)
            rows += len(indices)
        result.rows_seen += rows
        epoch_losses.append(total / max(rows, 1))
        logger.info(
            "step %s epoch %d: %d rows, mean KD loss %.5f", step, epoch, rows, epoch_losses[-1]
        )
    return epoch_losses
