"""Tests of the batch loader and the training loop on a small learnable click log."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from crossadapt.data.encoding import EncodedFrame
from crossadapt.errors import DataError, ParamsError, TrainingDiverged
from crossadapt.models.batch import Batch
from crossadapt.training.loader import BatchLoader, batch_count
from crossadapt.training.metrics import auc
from crossadapt.training.trainer import (
    EpochResult,
    TrainConfig,
    bce_with_logits,
    make_optimizer,
    predict,
    predict_logits,
    set_seed,
    train,
)

VOCAB = 30


class TinyCTRModel(nn.Module):
    """Logistic model over one categorical field and one numeric field (CTRModel interface)."""

    arch = "tiny"

    def __init__(self, dim: int = 4) -> None:
        super().__init__()
        self.table = nn.Embedding(VOCAB, dim, padding_idx=0)
        self.output = nn.Linear(dim + 1, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        embedded = self.table(batch.categorical[:, 0])  # (B, d)
        features = torch.cat([embedded, batch.numeric], dim=1)  # (B, d + 1)
        return self.output(features).squeeze(1)  # (B,)

    def embedding_parameters(self) -> list[nn.Parameter]:
        return [self.table.weight]

    def dense_parameters(self) -> list[nn.Parameter]:
        return list(self.output.parameters())


def make_frame(rows: int, seed: int) -> tuple[EncodedFrame, np.ndarray]:
    """Return a frame whose labels follow a known click probability per id, and that probability."""
    rng = np.random.default_rng(seed)
    id_logit = np.linspace(-3, 3, VOCAB)
    ids = rng.integers(2, VOCAB, size=rows)
    numeric = rng.normal(size=rows).astype(np.float32)
    true_probability = 1 / (1 + np.exp(-(id_logit[ids] + 0.5 * numeric)))
    labels = (rng.uniform(size=rows) < true_probability).astype(np.float32)
    frame = EncodedFrame(
        categorical=ids.reshape(-1, 1).astype(np.int64),
        multi_valued=np.zeros((rows, 0, 1), dtype=np.int64),
        numeric=numeric.reshape(-1, 1),
        label=labels,
        timestamp=np.arange(rows, dtype=np.int64),
    )
    return frame, true_probability


def parameters_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def assert_same_parameters(left: dict[str, torch.Tensor], right: dict[str, torch.Tensor]) -> None:
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


# Loader


def test_loader_time_order_covers_rows_once() -> None:
    frame, _ = make_frame(1000, seed=0)
    loader = BatchLoader(frame, batch_size=300)
    batches = list(loader)
    assert len(loader) == 4
    assert [b.num_rows for b in batches] == [300, 300, 300, 100]
    labels = torch.cat([b.label for b in batches]).numpy()
    np.testing.assert_array_equal(labels, frame.label)
    assert batches[0].categorical.dtype == torch.int64
    assert batches[0].numeric.dtype == torch.float32


def test_loader_time_order_shares_memory() -> None:
    frame, _ = make_frame(100, seed=0)
    first = next(iter(BatchLoader(frame, batch_size=10)))
    assert np.shares_memory(first.categorical.numpy(), frame.categorical)


def test_loader_shuffle_is_seeded_permutation() -> None:
    frame, _ = make_frame(500, seed=0)
    frame.timestamp = np.arange(500, dtype=np.int64)
    frame.numeric = np.arange(500, dtype=np.float32).reshape(-1, 1)
    loader = BatchLoader(frame, batch_size=64, shuffle=True, seed=3)
    epoch_one = torch.cat([b.numeric[:, 0] for b in loader]).numpy()
    epoch_two = torch.cat([b.numeric[:, 0] for b in loader]).numpy()
    assert sorted(epoch_one.tolist()) == list(range(500))
    assert sorted(epoch_two.tolist()) == list(range(500))
    assert not np.array_equal(epoch_one, epoch_two)
    assert not np.array_equal(epoch_one, np.arange(500))

    same_seed = BatchLoader(frame, batch_size=64, shuffle=True, seed=3)
    np.testing.assert_array_equal(torch.cat([b.numeric[:, 0] for b in same_seed]), epoch_one)


def test_loader_indices_and_drop_last() -> None:
    frame, _ = make_frame(100, seed=0)
    frame.numeric = np.arange(100, dtype=np.float32).reshape(-1, 1)
    loader = BatchLoader(frame, batch_size=4, indices=np.array([9, 3, 7, 1, 5, 0]), drop_last=True)
    batches = list(loader)
    assert len(batches) == 1
    assert batches[0].numeric[:, 0].tolist() == [9, 3, 7, 1]
    assert batch_count(10, 4) == 3
    assert batch_count(10, 4, drop_last=True) == 2


def test_loader_rejects_zero_batch_size() -> None:
    frame, _ = make_frame(10, seed=0)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(frame, batch_size=0)


# Optimizer and prediction


def test_make_optimizer_two_named_groups() -> None:
    model = TinyCTRModel()
    optimizer = make_optimizer(model, lr_embedding=0.1, lr_dense=0.001)
    groups = {group["name"]: group for group in optimizer.param_groups}
    assert isinstance(optimizer, torch.optim.Adam)
    assert groups["embedding"]["lr"] == 0.1
    assert groups["dense"]["lr"] == 0.001
    assert groups["embedding"]["params"] == [model.table.weight]
    assert len(groups["dense"]["params"]) == 2


def test_make_optimizer_rejects_unlisted_parameter() -> None:
    model = TinyCTRModel()
    model.extra = nn.Linear(2, 2)
    with pytest.raises(ValueError, match="2 parameters are in neither list"):
        make_optimizer(model, 0.1, 0.001)


def test_predict_matches_forward_in_row_order() -> None:
    torch.manual_seed(0)
    model = TinyCTRModel()
    model.train()
    frame, _ = make_frame(250, seed=1)
    logits = predict_logits(model, frame, batch_size=64)
    with torch.no_grad():
        expected = model(Batch.from_encoded(frame)).numpy()
    assert logits.shape == (250,)
    np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(predict(model, frame, 64), 1 / (1 + np.exp(-expected)), rtol=1e-6)
    assert model.training


def test_predict_sigmoid_is_stable_for_large_logits() -> None:
    model = TinyCTRModel()
    with torch.no_grad():
        model.output.bias.fill_(-1000.0)
    frame, _ = make_frame(5, seed=1)
    probabilities = predict(model, frame)
    assert np.all(np.isfinite(probabilities))
    assert np.all(probabilities < 1e-300)


# Training


def test_train_learns_click_probabilities() -> None:
    set_seed(0)
    model = TinyCTRModel()
    train_frame, _ = make_frame(6000, seed=1)
    valid_frame, valid_probability = make_frame(3000, seed=2)
    config = TrainConfig(epochs=3, batch_size=128, lr_embedding=0.05, lr_dense=0.01)
    result = train(model, train_frame, valid_frame, config)

    best_possible_auc = auc(valid_frame.label, valid_probability)
    learned_auc = result.best_metrics["auc"]
    assert learned_auc > best_possible_auc - 0.02
    assert result.epochs[0].train_rows == 6000
    assert result.epochs[0].batches == 47
    assert result.epochs[-1].train_loss < result.epochs[0].train_loss
    assert result.monitor == "auc"
    assert result.best_metrics["rows"] == 3000

    # The returned metrics describe the state the model holds.
    probabilities = predict(model, valid_frame)
    assert auc(valid_frame.label, probabilities) == pytest.approx(learned_auc)


class SparseTinyCTRModel(TinyCTRModel):
    """TinyCTRModel whose table emits sparse gradients, as `sparse_gradients: true` does."""

    config = SimpleNamespace(sparse_gradients=True)  # read by make_optimizer

    def __init__(self, dim: int = 4) -> None:
        super().__init__(dim)
        self.table.sparse = True


def test_train_with_sparse_gradients_and_clipping() -> None:
    set_seed(0)
    model = SparseTinyCTRModel()
    train_frame, _ = make_frame(6000, seed=1)
    valid_frame, valid_probability = make_frame(3000, seed=2)
    config = TrainConfig(
        epochs=3, batch_size=128, lr_embedding=0.05, lr_dense=0.01, max_grad_norm=1.0
    )
    result = train(model, train_frame, valid_frame, config)

    assert result.best_metrics["auc"] > auc(valid_frame.label, valid_probability) - 0.02
    assert torch.equal(model.table.weight[0], torch.zeros(4))


def test_train_times_training_apart_from_evaluation() -> None:
    model = TinyCTRModel()
    train_frame, _ = make_frame(1000, seed=1)
    valid_frame, _ = make_frame(500, seed=2)
    result = train(model, train_frame, valid_frame, TrainConfig(epochs=2, batch_size=100))
    assert result.train_seconds == pytest.approx(sum(e.train_seconds for e in result.epochs))
    assert result.eval_seconds == pytest.approx(sum(e.eval_seconds for e in result.epochs))
    assert all(e.train_seconds > 0 and e.eval_seconds > 0 for e in result.epochs)
    assert result.to_dict()["epochs"][1]["epoch"] == 2


def test_train_same_seed_same_weights() -> None:
    train_frame, _ = make_frame(800, seed=1)
    config = TrainConfig(epochs=2, batch_size=64, shuffle=True, seed=7)
    weights = []
    for _ in range(2):
        torch.manual_seed(0)
        model = TinyCTRModel()
        train(model, train_frame, None, config)
        weights.append(parameters_of(model))
    assert_same_parameters(weights[0], weights[1])


def test_train_early_stopping_restores_best_epoch() -> None:
    torch.manual_seed(0)
    model = TinyCTRModel()
    train_frame, _ = make_frame(3000, seed=1)
    valid_frame, _ = make_frame(1000, seed=2)
    epochs_done: list[int] = []
    states: dict[int, dict[str, torch.Tensor]] = {}
    optimizer_steps: dict[int, int] = {}
    optimizer = make_optimizer(model, 0.05, 0.01)

    def flip_labels_after_first_epoch(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        # From epoch 2 on, learn the opposite labels so that validation AUC drops.
        labels = batch.label if not epochs_done else 1 - batch.label
        return nn.functional.binary_cross_entropy_with_logits(logits, labels)

    def record(epoch_result: EpochResult) -> None:
        epochs_done.append(epoch_result.epoch)
        states[epoch_result.epoch] = parameters_of(model)
        optimizer_steps[epoch_result.epoch] = int(optimizer.state_dict()["state"][0]["step"])

    config = TrainConfig(epochs=6, batch_size=100, early_stopping_patience=2)
    result = train(
        model,
        train_frame,
        valid_frame,
        config,
        loss_fn=flip_labels_after_first_epoch,
        optimizer=optimizer,
        on_epoch_end=record,
    )

    assert epochs_done == [1, 2, 3]
    assert result.stopped_early
    assert result.best_epoch == 1
    assert [e.improved for e in result.epochs] == [True, False, False]
    assert result.epochs[1].valid_metrics["auc"] < result.epochs[0].valid_metrics["auc"]
    assert_same_parameters(parameters_of(model), states[1])
    assert int(optimizer.state_dict()["state"][0]["step"]) == optimizer_steps[1] == 30


def test_train_without_patience_runs_every_epoch() -> None:
    model = TinyCTRModel()
    train_frame, _ = make_frame(500, seed=1)
    valid_frame, _ = make_frame(300, seed=2)
    config = TrainConfig(epochs=3, batch_size=100, early_stopping_patience=None)
    result = train(model, train_frame, valid_frame, config)
    assert len(result.epochs) == 3
    assert not result.stopped_early


def test_train_single_class_validation_monitors_log_loss(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = TinyCTRModel()
    train_frame, _ = make_frame(500, seed=1)
    valid_frame, _ = make_frame(200, seed=2)
    valid_frame.label = np.zeros_like(valid_frame.label)
    with caplog.at_level(logging.WARNING):
        result = train(model, train_frame, valid_frame, TrainConfig(epochs=2, batch_size=100))
    assert result.monitor == "log_loss"
    assert result.best_epoch >= 1
    assert math.isnan(result.best_metrics["auc"])
    assert "monitors the validation log loss" in caplog.text


def test_train_without_validation_keeps_last_epoch() -> None:
    model = TinyCTRModel()
    train_frame, _ = make_frame(500, seed=1)
    result = train(model, train_frame, None, TrainConfig(epochs=2, batch_size=100))
    assert result.best_epoch == 2
    assert result.best_metrics is None
    assert result.epochs[1].valid_metrics is None


def test_train_empty_training_set_raises() -> None:
    model = TinyCTRModel()
    frame, _ = make_frame(0, seed=1)
    with pytest.raises(DataError, match="no rows"):
        train(model, frame, None, TrainConfig())


def test_train_custom_loss_receives_batch() -> None:
    model = TinyCTRModel()
    train_frame, _ = make_frame(300, seed=1)
    seen_rows: list[int] = []

    def counting_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        seen_rows.append(batch.num_rows)
        assert logits.shape == (batch.num_rows,)
        return bce_with_logits(logits, batch)

    train(model, train_frame, None, TrainConfig(epochs=1, batch_size=128), loss_fn=counting_loss)
    assert seen_rows == [128, 128, 44]


def test_train_nan_loss_keeps_last_state() -> None:
    model = TinyCTRModel()
    train_frame, _ = make_frame(1000, seed=1)
    calls = {"epoch": 1, "batch": 0}
    before_bad_batch: dict[str, torch.Tensor] = {}

    def loss_nan_at_epoch_two_batch_three(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        loss = bce_with_logits(logits, batch)
        if calls["epoch"] == 2 and calls["batch"] == 3:
            before_bad_batch.update(parameters_of(model))
            loss = loss * float("nan")
        calls["batch"] += 1
        return loss

    def next_epoch(_: EpochResult) -> None:
        calls["epoch"] += 1
        calls["batch"] = 0

    config = TrainConfig(epochs=3, batch_size=100)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 3: the loss is nan"):
        train(
            model,
            train_frame,
            None,
            config,
            loss_fn=loss_nan_at_epoch_two_batch_three,
            on_epoch_end=next_epoch,
        )
    assert_same_parameters(parameters_of(model), before_bad_batch)


def test_train_nan_gradient_raises_without_update() -> None:
    model = TinyCTRModel()
    train_frame, _ = make_frame(200, seed=1)
    initial = parameters_of(model)

    def loss_with_nan_gradient(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        # sqrt has an infinite derivative at 0, so the loss is finite but the gradient is NaN.
        return torch.sqrt((logits * 0).sum()) + bce_with_logits(logits, batch)

    with pytest.raises(TrainingDiverged, match="epoch 1, batch 0: the gradient norm is nan"):
        train(model, train_frame, None, TrainConfig(batch_size=50), loss_fn=loss_with_nan_gradient)
    assert_same_parameters(parameters_of(model), initial)


def test_train_clips_gradient_norm() -> None:
    torch.manual_seed(0)
    model = TinyCTRModel()
    train_frame, _ = make_frame(200, seed=1)
    before = torch.cat([p.detach().clone().reshape(-1) for p in model.parameters()])
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)

    def large_loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return 1000.0 * bce_with_logits(logits, batch)

    config = TrainConfig(epochs=1, batch_size=200, max_grad_norm=0.5)
    train(model, train_frame, None, config, loss_fn=large_loss, optimizer=optimizer)
    after = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    # One SGD step with lr 1 moves the parameters by exactly the clipped gradient.
    assert float(torch.linalg.vector_norm(after - before)) == pytest.approx(0.5, rel=1e-4)


def test_train_logs_start_epochs_and_end(caplog: pytest.LogCaptureFixture) -> None:
    model = TinyCTRModel()
    train_frame, _ = make_frame(300, seed=1)
    valid_frame, _ = make_frame(300, seed=2)
    with caplog.at_level(logging.INFO, logger="crossadapt.training.trainer"):
        train(model, train_frame, valid_frame, TrainConfig(epochs=1, batch_size=100))
    assert "training TinyCTRModel: 300 training rows, 300 validation rows" in caplog.text
    assert "epoch 1: train loss" in caplog.text
    assert "training done: best epoch 1 of 1" in caplog.text


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("lr_embedding", 0.0),
        ("lr_dense", -1.0),
        ("early_stopping_patience", -1),
        ("max_grad_norm", 0.0),
    ],
)
def test_train_config_rejects_invalid_value(key: str, value: float) -> None:
    with pytest.raises(ParamsError, match=key):
        TrainConfig(**{key: value})
