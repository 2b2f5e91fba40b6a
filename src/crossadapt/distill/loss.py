"""Binary knowledge-distillation loss for CTR logits (teacher soft targets plus labels)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

from crossadapt.errors import ParamsError

if TYPE_CHECKING:
    from torch import Tensor


class KDLossTerms(NamedTuple):
    """The KD loss and its two parts, each a scalar tensor (mean over the batch)."""

    total: Tensor
    soft: Tensor  # BCE(sigmoid(z_s / T), sigmoid(z_t / T)), before the T^2 factor
    hard: Tensor  # BCE(sigmoid(z_s), y)


def validate_kd_params(alpha: float, temperature: float) -> None:
    """Raise ParamsError unless ``0 <= alpha <= 1`` and ``temperature > 0`` (both finite)."""
    if not (math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise ParamsError(
            f"KD weight alpha must be in [0, 1], got {alpha}; set distill.alpha or online.alpha "
            "in params.yaml"
        )
    if not (math.isfinite(temperature) and temperature > 0.0):
        raise ParamsError(
            f"KD temperature must be > 0, got {temperature}; set distill.temperature or "
            "online.temperature in params.yaml"
        )


def kd_loss_terms(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    alpha: float,
    temperature: float,
) -> KDLossTerms:
    """Compute the binary KD loss of :func:`kd_loss` and return it with its two parts."""
    import torch
    import torch.nn.functional as F

    validate_kd_params(alpha, temperature)
    if not (student_logits.shape == teacher_logits.shape == labels.shape):
        raise ValueError(
            "student logits, teacher logits and labels must have one shape, got "
            f"{tuple(student_logits.shape)}, {tuple(teacher_logits.shape)} and "
            f"{tuple(labels.shape)}"
        )

    soft_targets = torch.sigmoid(teacher_logits.detach() / temperature)
    soft = F.binary_cross_entropy_with_logits(student_logits / temperature, soft_targets)
    hard = F.binary_cross_entropy_with_logits(student_logits, labels.to(student_logits.dtype))
    total = alpha * temperature**2 * soft + (1.0 - alpha) * hard
    return KDLossTerms(total=total, soft=soft, hard=hard)


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    alpha: float,
    temperature: float,
) -> Tensor:
    """Return the binary KD loss, a scalar mean over the batch.

    ``L = alpha * T^2 * BCE(sigmoid(z_s / T), sigmoid(z_t / T))
    + (1 - alpha) * BCE(sigmoid(z_s), y)``

    with ``BCE(p, q) = -(q log p + (1 - q) log(1 - p))``. Soft targets and temperature
    follow Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural Network" (2015),
    whose ``T^2`` factor keeps the soft term's gradient scale independent of ``T``. The
    binary form and the defaults ``T = 4``, ``alpha = 0.7`` are those of CrossAdapt (Wu et
    al. 2026, arXiv 2602.01775, reference code). Both terms use
    ``binary_cross_entropy_with_logits``, which stays finite for logits of any size.
    ``teacher_logits`` are detached, so no gradient reaches the teacher. Shapes: all three
    tensors ``(B,)``; ``labels`` in {0, 1}.

    Example::

        loss = kd_loss(student(batch), teacher_logits, batch.label, alpha=0.7, temperature=4.0)
        loss.backward()

    Raises ParamsError when ``alpha`` is outside [0, 1] or ``temperature <= 0``.
    """
    return kd_loss_terms(student_logits, teacher_logits, labels, alpha, temperature).total
