"""Tests of the binary knowledge-distillation loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from crossadapt.distill.loss import kd_loss, kd_loss_terms
from crossadapt.errors import ParamsError


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _bce(p: float, q: float) -> float:
    return -(q * math.log(p) + (1.0 - q) * math.log(1.0 - p))


def test_kd_loss_hand_computed() -> None:
    student = torch.tensor([2.0, -1.0], dtype=torch.float64)
    teacher = torch.tensor([1.0, 3.0], dtype=torch.float64)
    labels = torch.tensor([1.0, 0.0], dtype=torch.float64)
    alpha, temperature = 0.7, 2.0

    soft = (
        _bce(_sigmoid(2.0 / 2.0), _sigmoid(1.0 / 2.0))
        + _bce(_sigmoid(-1.0 / 2.0), _sigmoid(3.0 / 2.0))
    ) / 2
    hard = (_bce(_sigmoid(2.0), 1.0) + _bce(_sigmoid(-1.0), 0.0)) / 2
    expected = alpha * temperature**2 * soft + (1 - alpha) * hard

    terms = kd_loss_terms(student, teacher, labels, alpha, temperature)
    assert terms.total.item() == pytest.approx(expected, rel=1e-12)
    assert terms.soft.item() == pytest.approx(soft, rel=1e-12)
    assert terms.hard.item() == pytest.approx(hard, rel=1e-12)
    assert kd_loss(student, teacher, labels, alpha, temperature).item() == pytest.approx(
        expected, rel=1e-12
    )


def test_kd_loss_equal_logits_at_zero() -> None:
    # sigmoid(0) = 0.5 everywhere: each BCE is ln 2, so L = (alpha T^2 + 1 - alpha) ln 2.
    zeros = torch.zeros(3)
    loss = kd_loss(zeros, zeros, torch.ones(3), alpha=0.5, temperature=2.0)
    assert loss.item() == pytest.approx(2.5 * math.log(2.0), rel=1e-6)


def test_kd_loss_alpha_zero_is_bce() -> None:
    generator = torch.Generator().manual_seed(0)
    student = torch.randn(64, generator=generator)
    teacher = torch.randn(64, generator=generator)
    labels = (torch.rand(64, generator=generator) < 0.3).float()
    loss = kd_loss(student, teacher, labels, alpha=0.0, temperature=4.0)
    expected = F.binary_cross_entropy(torch.sigmoid(student), labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_kd_loss_alpha_one_is_soft_term() -> None:
    generator = torch.Generator().manual_seed(1)
    student = torch.randn(32, generator=generator)
    teacher = torch.randn(32, generator=generator)
    labels = torch.ones(32)
    loss = kd_loss(student, teacher, labels, alpha=1.0, temperature=3.0)
    expected = 9.0 * F.binary_cross_entropy(torch.sigmoid(student / 3), torch.sigmoid(teacher / 3))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_kd_loss_gradient_skips_teacher() -> None:
    student = torch.tensor([0.5, -2.0, 1.5], requires_grad=True)
    teacher = torch.tensor([1.0, 0.0, -1.0], requires_grad=True)
    labels = torch.tensor([1.0, 0.0, 0.0])
    alpha, temperature = 0.7, 4.0
    kd_loss(student, teacher, labels, alpha, temperature).backward()

    assert teacher.grad is None
    # dL/dz_s = [alpha T (sigmoid(z_s/T) - sigmoid(z_t/T)) + (1 - alpha)(sigmoid(z_s) - y)] / B
    with torch.no_grad():
        expected = (
            alpha
            * temperature
            * (torch.sigmoid(student / temperature) - torch.sigmoid(teacher / 4))
            + (1 - alpha) * (torch.sigmoid(student) - labels)
        ) / 3
    torch.testing.assert_close(student.grad, expected)


def test_kd_loss_finite_for_extreme_logits() -> None:
    student = torch.tensor([200.0, -200.0], requires_grad=True)
    teacher = torch.tensor([-200.0, 200.0])
    loss = kd_loss(student, teacher, torch.tensor([0.0, 1.0]), alpha=0.7, temperature=1.0)
    loss.backward()
    assert math.isfinite(loss.item())
    assert loss.item() == pytest.approx(200.0, rel=1e-6)
    assert torch.all(torch.isfinite(student.grad))


@pytest.mark.parametrize(
    ("alpha", "temperature"),
    [(-0.1, 4.0), (1.5, 4.0), (0.5, 0.0), (0.5, -1.0), (float("nan"), 4.0)],
)
def test_kd_loss_rejects_bad_params(alpha: float, temperature: float) -> None:
    zeros = torch.zeros(2)
    with pytest.raises(ParamsError, match=r"params\.yaml"):
        kd_loss(zeros, zeros, zeros, alpha, temperature)


def test_kd_loss_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="one shape"):
        kd_loss(torch.zeros(3), torch.zeros(2), torch.zeros(3), 0.5, 2.0)
