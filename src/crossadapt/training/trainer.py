"""Training loop for every CTR model: Adam with separate embedding/dense learning rates,
validation AUC early stopping, divergence detection, and batched prediction.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from crossadapt.errors import DataError, ParamsError, TrainingDiverged
from crossadapt.training.loader import BatchLoader, frame_rows
from crossadapt.training.metrics import evaluate_predictions

if TYPE_CHECKING:
    import torch

    from crossadapt.data.encoding import EncodedFrame
    from crossadapt.models.batch import Batch

    LossFn = Callable[[torch.Tensor, Batch], torch.Tensor]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one ``train`` call.

    ``early_stopping_patience`` is the number of epochs without a better validation score
    after which training stops; ``None`` trains every epoch (the best epoch is still kept).
    ``max_grad_norm`` clips the global gradient L2 norm when set.
    """

    epochs: int = 1
    batch_size: int = 1024
    lr_embedding: float = 0.01
    lr_dense: float = 0.001
    early_stopping_patience: int | None = 1
    seed: int = 42
    max_grad_norm: float | None = None
    shuffle: bool = False

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 1, "at least 1"),
            ("lr_embedding", self.lr_embedding > 0, "positive"),
            ("lr_dense", self.lr_dense > 0, "positive"),
            (
                "early_stopping_patience",
                self.early_stopping_patience is None or self.early_stopping_patience >= 0,
                "0 or more, or null to disable early stopping",
            ),
            (
                "max_grad_norm",
                self.max_grad_norm is None or self.max_grad_norm > 0,
                "positive, or null to disable clipping",
            ),
        ]
        for key, valid, expected in checks:
            if not valid:
                raise ParamsError(
                    f"invalid training setting {key}={getattr(self, key)!r}: it must be {expected}"
                )


@dataclass
class EpochResult:
    """Summary of one epoch: mean training loss, rows, timings and validation metrics."""

    epoch: int
    train_loss: float
    train_rows: int
    batches: int
    train_seconds: float
    eval_seconds: float
    valid_metrics: dict[str, Any] | None
    improved: bool


@dataclass
class TrainResult:
    """Outcome of ``train``: per-epoch results and the epoch whose state the model holds.

    ``train_seconds`` sums the time spent in forward/backward/optimizer steps only;
    validation time is in ``eval_seconds``.
    """

    epochs: list[EpochResult] = field(default_factory=list)
    best_epoch: int = 0
    best_metrics: dict[str, Any] | None = None
    monitor: str = "auc"
    stopped_early: bool = False
    train_seconds: float = 0.0
    eval_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (for DVC metrics files and logs)."""
        return asdict(self)


def set_seed(seed: int, deterministic_kernels: bool = False) -> None:
    """Seed ``random``, NumPy and torch; optionally ask torch for deterministic kernels only.

    On CPU with a fixed thread count the kernels this project uses give identical results
    run after run without that switch (the tests check it). The switch is off by default
    because ``torch.use_deterministic_algorithms(True)`` made a training step of a 26-field
    DNN with 100,000-row tables about 3 times slower on CPU (torch 2.13; measured with one
    thread, batch 4096). Turn it on for GPU runs that must be reproducible bit for bit.
    """
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic_kernels:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def make_optimizer(
    model: torch.nn.Module, lr_embedding: float, lr_dense: float
) -> torch.optim.Adam:
    """Build Adam with two parameter groups, named "embedding" and "dense".

    For a model built with ``sparse_gradients: true`` this is `SparseAwareAdam`, which
    updates only the embedding rows of each batch (lazy Adam).

    Raises ValueError unless the model's ``embedding_parameters()`` and
    ``dense_parameters()`` together list each of its parameters exactly once, so that no
    parameter is left untrained.
    """
    import torch

    embedding = list(model.embedding_parameters())
    dense = list(model.dense_parameters())

    grouped_ids = [id(p) for p in embedding] + [id(p) for p in dense]
    model_ids = {id(p) for p in model.parameters()}
    if len(grouped_ids) != len(set(grouped_ids)) or set(grouped_ids) != model_ids:
        missing = len(model_ids - set(grouped_ids))
        raise ValueError(
            f"{type(model).__name__}: embedding_parameters() and dense_parameters() must "
            f"partition model.parameters(): {missing} parameters are in neither list, "
            f"{len(grouped_ids) - len(set(grouped_ids))} are listed twice"
        )

    groups = [
        {"name": "embedding", "params": embedding, "lr": lr_embedding},
        {"name": "dense", "params": dense, "lr": lr_dense},
    ]
    if getattr(getattr(model, "config", None), "sparse_gradients", False):
        from crossadapt.training.optim import SparseAwareAdam

        return SparseAwareAdam(groups)
    return torch.optim.Adam(groups)


def model_device(model: torch.nn.Module) -> torch.device:
    """Return the device of the model's first parameter (CPU for a model without any)."""
    import torch

    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def predict_logits(
    model: torch.nn.Module, frame: EncodedFrame, batch_size: int = 4096
) -> np.ndarray:
    """Return the model's logits for every row of ``frame``, in row order, as float32 (N,).

    The model runs in eval mode without gradients; its previous train/eval mode is restored.
    """
    import torch

    was_training = model.training
    model.eval()
    chunks: list[np.ndarray] = []
    try:
        with torch.inference_mode():
            for batch in BatchLoader(frame, batch_size, device=model_device(model)):
                chunks.append(model(batch).reshape(-1).float().cpu().numpy())
    finally:
        model.train(was_training)

    if not chunks:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(chunks)


def predict(model: torch.nn.Module, frame: EncodedFrame, batch_size: int = 4096) -> np.ndarray:
    """Return predicted probabilities ``sigmoid(logits)`` for every row, float64 (N,)."""
    logits = predict_logits(model, frame, batch_size).astype(np.float64)
    # Evaluate the sigmoid without overflow for large negative logits.
    return np.exp(-np.logaddexp(0.0, -logits))


def bce_with_logits(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Default loss: mean binary cross-entropy of ``sigmoid(logits)`` against the labels."""
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(logits, batch.label)


def _snapshot(module_or_optimizer: Any) -> dict[str, Any]:
    # A deep copy, because state_dict() returns references that later steps modify in place.
    return copy.deepcopy(module_or_optimizer.state_dict())


def _score_is_better(score: float, best: float | None, monitor: str) -> bool:
    if math.isnan(score):
        return False
    if best is None:
        return True
    return score < best if monitor == "log_loss" else score > best


def _choose_monitor(valid_frame: EncodedFrame | None) -> str:
    if valid_frame is None:
        return "none"
    positives = float(np.asarray(valid_frame.label).sum())
    if 0 < positives < frame_rows(valid_frame):
        return "auc"
    logger.warning(
        "validation set has a single class (%d rows, %d positives): AUC is undefined, "
        "early stopping monitors the validation log loss instead",
        frame_rows(valid_frame),
        int(positives),
    )
    return "log_loss"


def _run_epoch(
    model: torch.nn.Module,
    loader: BatchLoader,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    config: TrainConfig,
    epoch: int,
) -> tuple[float, int, int]:
    """Train one pass over ``loader``; return (mean loss per row, rows, batches)."""
    from tqdm.auto import tqdm

    from crossadapt.training.optim import gradient_norm

    model.train()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    loss_sum = 0.0
    rows = 0
    batches = 0

    with tqdm(
        loader,
        total=len(loader),
        desc=f"epoch {epoch}",
        unit="batch",
        leave=False,
        disable=not sys.stderr.isatty(),
    ) as progress:
        for batch_index, batch in enumerate(progress):
            optimizer.zero_grad(set_to_none=True)
            logits = model(batch)  # (B,)
            loss = loss_fn(logits, batch)
            loss_value = float(loss.detach())
            if not math.isfinite(loss_value):
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch}, batch {batch_index}: the loss is "
                    f"{loss_value}. The model keeps its parameters from before this batch. "
                    "Lower the learning rates (lr_embedding, lr_dense) or set max_grad_norm"
                )

            loss.backward()
            grad_norm = gradient_norm(parameters, config.max_grad_norm)
            if not math.isfinite(grad_norm):
                optimizer.zero_grad(set_to_none=True)
                raise TrainingDiverged(
                    f"training diverged in epoch {epoch}, batch {batch_index}: the gradient "
                    f"norm is {grad_norm} (loss {loss_value:.6g}). The model keeps its parameters "
                    "from before this batch. Lower the learning rates or set max_grad_norm"
                )
            optimizer.step()

            batch_rows = int(batch.label.shape[0])
            loss_sum += loss_value * batch_rows
            rows += batch_rows
            batches += 1
            progress.set_postfix(loss=f"{loss_sum / rows:.4f}", refresh=False)

    mean_loss = loss_sum / rows if rows else math.nan
    return mean_loss, rows, batches


def train(
    model: torch.nn.Module,
    train_frame: EncodedFrame,
    valid_frame: EncodedFrame | None,
    config: TrainConfig,
    loss_fn: LossFn | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    on_epoch_end: Callable[[EpochResult], None] | None = None,
) -> TrainResult:
    """Train ``model`` on ``train_frame`` and leave it at its best validation epoch.

    Each epoch passes over the training rows in time order (or shuffled when
    ``config.shuffle``), then scores ``valid_frame`` with ``evaluate_predictions``. The
    model and optimizer states of the epoch with the best validation AUC are restored at
    the end; training stops after ``early_stopping_patience`` epochs without improvement.
    If the validation set has a single class the validation log loss is monitored instead,
    and with ``valid_frame=None`` the last epoch is kept.

    ``loss_fn(logits, batch)`` replaces the default BCE with logits (distillation passes its
    KD loss). ``optimizer`` defaults to ``make_optimizer`` with the config's learning rates.

    Raises ``TrainingDiverged`` naming the epoch and batch index when a loss or gradient
    norm is NaN or infinite. No update from that batch is applied, so the model keeps the
    parameters of the last finite step.
    """
    if frame_rows(train_frame) == 0:
        raise DataError(
            "the training set has no rows: check the split dates in params.yaml and that "
            "the partitions of those days are not empty"
        )
    if valid_frame is not None and frame_rows(valid_frame) == 0:
        logger.warning("the validation set has no rows: training without early stopping")
        valid_frame = None

    set_seed(config.seed)
    loss_fn = loss_fn or bce_with_logits
    optimizer = optimizer or make_optimizer(model, config.lr_embedding, config.lr_dense)
    loader = BatchLoader(
        train_frame,
        config.batch_size,
        shuffle=config.shuffle,
        seed=config.seed,
        device=model_device(model),
    )
    monitor = _choose_monitor(valid_frame)
    result = TrainResult(monitor=monitor)

    logger.info(
        "training %s: %d training rows, %s validation rows, %d epochs max, batch %d, "
        "lr embedding %g, lr dense %g, %s order",
        type(model).__name__,
        loader.rows,
        frame_rows(valid_frame) if valid_frame is not None else "no",
        config.epochs,
        config.batch_size,
        config.lr_embedding,
        config.lr_dense,
        "shuffled" if config.shuffle else "time",
    )

    best_score: float | None = None
    best_model_state: dict[str, Any] | None = None
    best_optimizer_state: dict[str, Any] | None = None
    epochs_without_improvement = 0

    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        train_loss, rows, batches = _run_epoch(model, loader, optimizer, loss_fn, config, epoch)
        train_seconds = time.perf_counter() - started

        started = time.perf_counter()
        valid_metrics = None
        improved = True
        if valid_frame is not None:
            probabilities = predict(model, valid_frame, batch_size=max(config.batch_size, 4096))
            valid_metrics = evaluate_predictions(valid_frame.label, probabilities)
            improved = _score_is_better(valid_metrics[monitor], best_score, monitor)
        eval_seconds = time.perf_counter() - started

        epoch_result = EpochResult(
            epoch=epoch,
            train_loss=train_loss,
            train_rows=rows,
            batches=batches,
            train_seconds=train_seconds,
            eval_seconds=eval_seconds,
            valid_metrics=valid_metrics,
            improved=improved,
        )
        result.epochs.append(epoch_result)
        result.train_seconds += train_seconds
        result.eval_seconds += eval_seconds
        logger.info(
            "epoch %d: train loss %.5f on %d rows in %.2f s; validation %s (%.2f s)%s",
            epoch,
            train_loss,
            rows,
            train_seconds,
            _format_metrics(valid_metrics),
            eval_seconds,
            ", best so far" if improved else "",
        )
        if on_epoch_end is not None:
            on_epoch_end(epoch_result)

        if improved:
            best_score = valid_metrics[monitor] if valid_metrics is not None else None
            result.best_epoch = epoch
            result.best_metrics = valid_metrics
            epochs_without_improvement = 0
            if valid_frame is not None and epoch < config.epochs:
                best_model_state = _snapshot(model)
                best_optimizer_state = _snapshot(optimizer)
            continue

        epochs_without_improvement += 1
        patience = config.early_stopping_patience
        if patience is not None and epochs_without_improvement >= patience:
            result.stopped_early = epoch < config.epochs
            logger.info(
                "early stopping after epoch %d: validation %s did not improve for %d epochs",
                epoch,
                monitor,
                epochs_without_improvement,
            )
            break

    if result.best_epoch != result.epochs[-1].epoch and best_model_state is not None:
        model.load_state_dict(best_model_state)
        optimizer.load_state_dict(best_optimizer_state)
        logger.info("restored the model and optimizer state of epoch %d", result.best_epoch)

    logger.info(
        "training done: best epoch %d of %d, validation %s; %.2f s training, %.2f s evaluation",
        result.best_epoch,
        len(result.epochs),
        _format_metrics(result.best_metrics),
        result.train_seconds,
        result.eval_seconds,
    )
    return result


def _format_metrics(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return "skipped"
    return (
        f"AUC {metrics['auc']:.5f}, log loss {metrics['log_loss']:.5f}, "
        f"bias {metrics['prediction_bias']:+.4f}, NE {metrics['normalized_entropy']:.4f}"
    )
