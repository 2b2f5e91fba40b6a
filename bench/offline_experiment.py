"""Offline stage of CrossAdapt against its baselines and ablations, per teacher->student pair.

Run from the repository root: ``.venv/bin/python bench/offline_experiment.py`` (see
bench/EXPERIMENTS.md). Everything runs in memory; results go to bench/results/.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, machine_info, markdown_table, now_utc, write_results
from experiment_data import (
    ExperimentData,
    SyntheticStream,
    fit_retained_schema,
    fit_teacher_schema,
    load_movielens,
    synthetic_stream,
)

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.models.base import CTRModel

logger = logging.getLogger("bench.offline_experiment")

# (teacher arch, teacher dim, student arch, student dim)
PAIRS: tuple[tuple[str, int, str, int], ...] = (
    ("dnn", 8, "dcnv2", 16),
    ("dnn", 8, "fibinet", 16),
    ("deepfm", 16, "autoint", 16),
    ("dcnv2", 32, "dnn", 16),
)
METHODS: tuple[str, ...] = (
    "teacher",
    "scratch",
    "standard_kd",
    "transfer_only",
    "crossadapt",
    "crossadapt_no_sampling",
    "no_embedding_transfer",
    "no_step_b",
)
MODEL_CONFIG: dict[str, Any] = {"hidden_units": [128, 64], "dropout": 0.0}
VALID_SHARE = 0.1
SEED_BASE = 42


@dataclass(frozen=True)
class OfflineSettings:
    """Training settings of every offline method (defaults: params.yaml, batch sizes as noted).

    The scratch student and standard KD train for at most ``student_epochs`` epochs with early
    stopping (patience 1) on the last ``VALID_SHARE`` of the retained window.
    """

    teacher_epochs: int = 3
    teacher_batch_size: int = 1024
    student_epochs: int = 5
    student_batch_size: int = 256
    lr_embedding: float = 0.01
    lr_dense: float = 0.001
    distill_lr_embedding: float = 0.1
    distill_lr_dense: float = 0.001
    distill_batch_size: int = 256
    epochs_b: int = 1
    epochs_c: int = 1
    alpha: float = 0.7
    temperature: float = 4.0
    sample_strategy: str = "balanced"
    sample_ratio: float = 0.1
    new_row_init: str = "mean"


PARAMS_PATH = Path(__file__).resolve().parents[1] / "params.yaml"


def params_defaults(path: Path = PARAMS_PATH) -> dict[str, Any]:
    """CrossAdapt's offline settings from params.yaml, so the bench runs what the pipeline runs.

    Keys: ``distill.{lr_embedding,lr_dense,epochs_b,epochs_c,alpha,temperature,batch_size}``,
    ``sampling.{strategy,ratio}`` and ``student.new_row_init``.
    """
    import yaml

    params = yaml.safe_load(path.read_text())
    distill, sampling = params["distill"], params["sampling"]
    return {
        "distill_lr_embedding": float(distill["lr_embedding"]),
        "distill_lr_dense": float(distill["lr_dense"]),
        "distill_batch_size": int(distill["batch_size"]),
        "epochs_b": int(distill["epochs_b"]),
        "epochs_c": int(distill["epochs_c"]),
        "alpha": float(distill["alpha"]),
        "temperature": float(distill["temperature"]),
        "sample_strategy": str(sampling["strategy"]),
        "sample_ratio": float(sampling["ratio"]),
        "new_row_init": str(params["student"].get("new_row_init", "mean")),
    }


@dataclass
class TeacherRun:
    """A trained teacher, its schema (history vocabulary) and its training wall time."""

    model: CTRModel
    schema: FeatureSchema
    optimizer: Any
    train_seconds: float


@dataclass
class StudentRun:
    """A student after the offline stage, its schema and the wall time its training took."""

    model: CTRModel
    schema: FeatureSchema
    train_seconds: float
    detail: dict[str, Any]


def train_teacher(
    data: ExperimentData, arch: str, dim: int, seed: int, settings: OfflineSettings
) -> TeacherRun:
    """Train the teacher on history + retained window, early stopping on the last 10% of rows."""
    from crossadapt.models.registry import build_model
    from crossadapt.training.trainer import TrainConfig, make_optimizer, set_seed, train

    schema = fit_teacher_schema(data).with_embedding_dims(dim)
    frame = data.encoded("history_and_retained", schema)
    n_valid = max(1, int(len(frame) * VALID_SHARE))
    train_frame = frame.take(np.arange(len(frame) - n_valid))
    valid_frame = frame.take(np.arange(len(frame) - n_valid, len(frame)))

    set_seed(seed)
    model = build_model(arch, schema, MODEL_CONFIG)
    config = TrainConfig(
        epochs=settings.teacher_epochs,
        batch_size=settings.teacher_batch_size,
        lr_embedding=settings.lr_embedding,
        lr_dense=settings.lr_dense,
        early_stopping_patience=1,
        seed=seed,
    )
    optimizer = make_optimizer(model, config.lr_embedding, config.lr_dense)
    result = train(model, train_frame, valid_frame, config, optimizer=optimizer)
    return TeacherRun(model, schema, optimizer, result.train_seconds)


def train_scratch(
    data: ExperimentData, arch: str, dim: int, seed: int, settings: OfflineSettings
) -> StudentRun:
    """Train the student on the retained window's labels only, with a retained-only vocabulary."""
    from crossadapt.models.registry import build_model
    from crossadapt.training.trainer import set_seed, train

    schema = fit_retained_schema(data).with_embedding_dims(dim)
    train_frame, valid_frame = _split_valid(data.encoded("retained", schema))
    set_seed(seed)
    model = build_model(arch, schema, MODEL_CONFIG)
    result = train(model, train_frame, valid_frame, _student_train_config(settings, seed))
    return StudentRun(model, schema, result.train_seconds, _train_detail(result))


def train_standard_kd(
    data: ExperimentData,
    teacher: TeacherRun,
    arch: str,
    dim: int,
    seed: int,
    settings: OfflineSettings,
) -> StudentRun:
    """Distil the frozen teacher into a randomly initialised student on the whole retained window.

    The student has the CrossAdapt student's vocabulary (teacher's ids, then new ids) with
    random rows. Loss: crossadapt.distill.loss.kd_loss against the teacher's logits of each
    batch, with the scratch student's epochs, early stopping and learning rates.
    """
    import torch

    from crossadapt.distill.loss import kd_loss
    from crossadapt.online.codistill import teacher_view_of
    from crossadapt.training.trainer import set_seed, train
    from crossadapt.transfer.student import build_student, retained_token_counts

    counts = retained_token_counts([data.retained], teacher.schema)
    build = build_student(
        teacher.model,
        teacher.schema,
        counts,
        arch,
        dim,
        MODEL_CONFIG,
        seed=seed,
        transfer_embeddings=False,
    )
    view = teacher_view_of(teacher.schema, build.schema)
    teacher.model.eval()

    def loss_fn(logits: torch.Tensor, batch: Any) -> torch.Tensor:
        with torch.no_grad():
            targets = teacher.model(view(batch) if view is not None else batch)
        return kd_loss(logits, targets, batch.label, settings.alpha, settings.temperature)

    train_frame, valid_frame = _split_valid(data.encoded("retained", build.schema))
    set_seed(seed)
    result = train(
        build.model, train_frame, valid_frame, _student_train_config(settings, seed), loss_fn
    )
    return StudentRun(build.model, build.schema, result.train_seconds, _train_detail(result))


def train_crossadapt(
    data: ExperimentData,
    teacher: TeacherRun,
    arch: str,
    dim: int,
    seed: int,
    settings: OfflineSettings,
    *,
    transfer_embeddings: bool = True,
    step_b: bool = True,
    train_steps: bool = True,
) -> StudentRun:
    """Run CrossAdapt's offline stage: embedding transfer (A), sampling, steps B and C.

    ``train_seconds`` covers counting the retained ids, the transfer, the sampling, the
    teacher's logits on the sample and steps B and C; encoding the retained window is left
    out, as it is for every method. ``train_steps=False`` stops after the transfer.
    """
    from crossadapt.distill.progressive import DistillConfig, progressive_distill, teacher_logits
    from crossadapt.distill.sampling import sample_indices
    from crossadapt.training.trainer import set_seed
    from crossadapt.transfer.student import build_student, retained_token_counts

    started = time.perf_counter()
    counts = retained_token_counts([data.retained], teacher.schema)
    build = build_student(
        teacher.model,
        teacher.schema,
        counts,
        arch,
        dim,
        MODEL_CONFIG,
        seed=seed,
        new_row_init=settings.new_row_init,
        transfer_embeddings=transfer_embeddings,
    )
    detail: dict[str, Any] = {
        "transfer_seconds": build.seconds,
        "new_rows": build.summary()["new_rows"],
    }
    if not train_steps:
        return StudentRun(build.model, build.schema, time.perf_counter() - started, detail)

    encoding_started = time.perf_counter()
    retained = data.encoded("retained", build.schema)
    retained_teacher = data.encoded("retained", teacher.schema)
    encoding_seconds = time.perf_counter() - encoding_started

    strategy = settings.sample_strategy
    indices = sample_indices(
        len(retained),
        retained.label,
        retained.timestamp,
        strategy,  # type: ignore[arg-type]
        1.0 if strategy == "none" else settings.sample_ratio,
        seed,
    )
    cached_logits = teacher_logits(teacher.model, retained_teacher.take(indices))
    set_seed(seed)
    config = DistillConfig(
        alpha=settings.alpha,
        temperature=settings.temperature,
        epochs_b=settings.epochs_b if step_b else 0,
        epochs_c=settings.epochs_c,
        lr_embedding=settings.distill_lr_embedding,
        lr_dense=settings.distill_lr_dense,
        batch_size=settings.distill_batch_size,
        seed=seed,
    )
    result = progressive_distill(build.model, retained.take(indices), cached_logits, config)
    detail.update(
        {"sample_rows": len(indices), "rows_seen": result.rows_seen, "losses": result.losses}
    )
    seconds = time.perf_counter() - started - encoding_seconds
    return StudentRun(build.model, build.schema, seconds, detail)


def evaluate(model: CTRModel, data: ExperimentData, part: str, schema: FeatureSchema) -> dict:
    """Evaluate ``model`` on ``part`` encoded with ``schema``: AUC, log loss, bias and NE."""
    from crossadapt.training.metrics import evaluate_predictions
    from crossadapt.training.trainer import predict

    frame = data.encoded(part, schema)
    return evaluate_predictions(frame.label, predict(model, frame))


def run_pair(
    data: ExperimentData,
    teacher: TeacherRun,
    pair: tuple[str, int, str, int],
    seed: int,
    settings: OfflineSettings,
    methods: tuple[str, ...],
) -> dict[str, dict[str, Any]]:
    """Train every method of one pair and seed; return ``{method: test metrics + seconds}``."""
    _, _, arch, dim = pair
    runs: dict[str, dict[str, Any]] = {}
    for method in methods:
        started = time.perf_counter()
        if method == "teacher":
            model, schema, seconds, detail = (
                teacher.model,
                teacher.schema,
                teacher.train_seconds,
                {},
            )
        else:
            run = _train_student(method, data, teacher, arch, dim, seed, settings)
            model, schema, seconds, detail = run.model, run.schema, run.train_seconds, run.detail
        metrics = evaluate(model, data, "test", schema)
        runs[method] = {**metrics, "train_seconds": seconds, "detail": detail}
        logger.info(
            "%s %s->%s seed %d %s: test AUC %.4f, %.2f s training (%.1f s with evaluation)",
            data.name,
            pair[0],
            arch,
            seed,
            method,
            metrics["auc"],
            seconds,
            time.perf_counter() - started,
        )
    return runs


def _train_student(
    method: str,
    data: ExperimentData,
    teacher: TeacherRun,
    arch: str,
    dim: int,
    seed: int,
    settings: OfflineSettings,
) -> StudentRun:
    if method == "scratch":
        return train_scratch(data, arch, dim, seed, settings)
    if method == "standard_kd":
        return train_standard_kd(data, teacher, arch, dim, seed, settings)
    if method == "transfer_only":
        return train_crossadapt(data, teacher, arch, dim, seed, settings, train_steps=False)
    if method == "crossadapt":
        return train_crossadapt(data, teacher, arch, dim, seed, settings)
    if method == "crossadapt_no_sampling":
        no_sampling = replace(settings, sample_strategy="none")
        return train_crossadapt(data, teacher, arch, dim, seed, no_sampling)
    if method == "no_embedding_transfer":
        return train_crossadapt(data, teacher, arch, dim, seed, settings, transfer_embeddings=False)
    if method == "no_step_b":
        return train_crossadapt(data, teacher, arch, dim, seed, settings, step_b=False)
    raise ValueError(f"unknown method {method!r}; use one of {list(METHODS)}")


def _split_valid(frame: Any) -> tuple[Any, Any]:
    n_valid = max(1, int(len(frame) * VALID_SHARE))
    return frame.take(np.arange(len(frame) - n_valid)), frame.take(
        np.arange(len(frame) - n_valid, len(frame))
    )


def _student_train_config(settings: OfflineSettings, seed: int) -> Any:
    from crossadapt.training.trainer import TrainConfig

    return TrainConfig(
        epochs=settings.student_epochs,
        batch_size=settings.student_batch_size,
        lr_embedding=settings.lr_embedding,
        lr_dense=settings.lr_dense,
        early_stopping_patience=1,
        seed=seed,
    )


def _train_detail(result: Any) -> dict[str, Any]:
    return {
        "epochs": len(result.epochs),
        "best_epoch": result.best_epoch,
        "eval_seconds": result.eval_seconds,
    }


def vocabulary_coverage(data: ExperimentData) -> dict[str, Any]:
    """Measure, per id field, the share of test rows whose id is in the history only.

    These ids are OOV for the scratch student and known to the teacher (and so to the
    transferred student); a small share leaves the transfer little to win.
    """
    coverage: dict[str, Any] = {}
    for spec in data.field_defs:
        if spec["type"] != "categorical":
            continue
        name = spec["name"]
        history = set(data.history[name].dropna().astype(str))
        retained = set(data.retained[name].dropna().astype(str))
        test_values = data.test[name].dropna().astype(str)
        only_history = test_values.isin(history - retained)
        unseen = ~test_values.isin(history | retained)
        coverage[name] = {
            "test_rows_with_history_only_id": round(float(only_history.mean()), 4),
            "test_rows_with_unseen_id": round(float(unseen.mean()), 4),
            "distinct_test_ids": int(test_values.nunique()),
        }
    return coverage


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Compute the mean and sample standard deviation per (dataset, pair, method) over seeds."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for record in records:
        key = (record["dataset"], record["pair"], record["method"])
        groups.setdefault(key, []).append(record)
    rows = []
    for (dataset, pair, method), items in groups.items():
        row: dict[str, Any] = {
            "dataset": dataset,
            "pair": pair,
            "method": method,
            "seeds": len(items),
        }
        for metric in ("auc", "log_loss", "prediction_bias", "train_seconds"):
            values = [item[metric] for item in items if item[metric] is not None]
            values = [value for value in values if math.isfinite(value)]
            row[f"{metric}_mean"] = statistics.fmean(values) if values else math.nan
            row[f"{metric}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        rows.append(row)
    return rows


def target_check(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Compare CrossAdapt with the scratch student per dataset and pair against the targets.

    Targets: AUC at least the scratch student's with at least 40 % less training time, and
    an AUC gain of at least 0.003 (0.3 points) at equal or lower time.
    """
    by_key = {(row["dataset"], row["pair"], row["method"]): row for row in summary}
    checks = []
    for (dataset, pair, method), row in by_key.items():
        if method != "crossadapt" or (dataset, pair, "scratch") not in by_key:
            continue
        scratch = by_key[(dataset, pair, "scratch")]
        auc_gain = row["auc_mean"] - scratch["auc_mean"]
        time_saving = 1.0 - row["train_seconds_mean"] / scratch["train_seconds_mean"]
        checks.append(
            {
                "dataset": dataset,
                "pair": pair,
                "auc_gain_points": round(100 * auc_gain, 3),
                "time_saving_share": round(time_saving, 3),
                "auc_at_least_scratch_with_40pct_less_time": bool(
                    auc_gain >= 0 and time_saving >= 0.4
                ),
                "auc_gain_0_3_points_at_equal_or_lower_time": bool(
                    auc_gain >= 0.003 and time_saving >= 0
                ),
            }
        )
    return checks


def render_markdown(payload: dict[str, Any]) -> str:
    """Render the results tables of the offline experiment, one per dataset."""
    lines = [
        "# Offline stage: CrossAdapt against baselines and ablations",
        "",
        f"Command: `{payload['command']}`  ",
        f"Finished {payload['finished_utc']} on {payload['machine']['nproc']} CPU cores "
        f"({payload['machine']['cpu_model']}), torch threads {payload['threads']}, "
        f"{payload['wall_seconds']:.0f} s in all.",
        "",
        "Test metrics, mean ± std over seeds. Training time is the wall time of the method's "
        "training only (the teacher's for `teacher`); the machine was shared with other jobs, "
        "so times are noisy.",
        "",
    ]
    for dataset in payload["datasets"]:
        lines += [f"## {dataset}", ""]
        rows = []
        for row in payload["summary"]:
            if row["dataset"] != dataset:
                continue
            rows.append(
                [
                    row["pair"],
                    row["method"],
                    row["seeds"],
                    _mean_std(row, "auc", ".4f"),
                    _mean_std(row, "log_loss", ".4f"),
                    _mean_std(row, "prediction_bias", "+.3f"),
                    _mean_std(row, "train_seconds", ".2f"),
                ]
            )
        lines.append(
            markdown_table(["pair", "method", "seeds", "AUC", "LogLoss", "bias", "train s"], rows)
        )
        checks = [check for check in payload["target_check"] if check["dataset"] == dataset]
        if checks:
            lines.append(
                markdown_table(
                    [
                        "pair",
                        "AUC gain (points)",
                        "time saving",
                        "≥ scratch, ≥40% faster",
                        "+0.3 points, not slower",
                    ],
                    [
                        [
                            check["pair"],
                            check["auc_gain_points"],
                            f"{100 * check['time_saving_share']:.0f}%",
                            check["auc_at_least_scratch_with_40pct_less_time"],
                            check["auc_gain_0_3_points_at_equal_or_lower_time"],
                        ]
                        for check in checks
                    ],
                )
            )
        coverage = payload["coverage"].get(dataset)
        if coverage:
            lines += [
                "Test rows whose id is in the history but not in the retained window "
                "(OOV for the scratch student): "
                + ", ".join(
                    f"{name} {100 * value['test_rows_with_history_only_id']:.1f}%"
                    for name, value in coverage.items()
                ),
                "",
            ]
    if payload.get("unfinished"):
        lines += ["Not finished within the time budget: " + ", ".join(payload["unfinished"]), ""]
    return "\n".join(lines)


def _mean_std(row: dict[str, Any], metric: str, spec: str) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return "n/a"
    return f"{mean:{spec}} ± {std or 0.0:{spec.lstrip('+')}}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = params_defaults()
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["movielens", "synthetic"],
        choices=["movielens", "synthetic"],
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds per pair (MovieLens)")
    parser.add_argument(
        "--synthetic-seeds",
        type=int,
        default=None,
        help="seeds on the synthetic stream (default: --seeds)",
    )
    parser.add_argument(
        "--pairs", type=int, default=len(PAIRS), help="first N teacher->student pairs"
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--rows-per-day", type=int, default=50_000, help="synthetic rows per day")
    parser.add_argument("--history-days", type=int, default=10)
    parser.add_argument("--retained-days", type=int, default=4)
    # CrossAdapt's settings default to params.yaml (distill:, sampling:, student:).
    parser.add_argument(
        "--distill-lr-embedding", type=float, default=defaults["distill_lr_embedding"]
    )
    parser.add_argument("--sample-ratio", type=float, default=defaults["sample_ratio"])
    parser.add_argument("--sample-strategy", default=defaults["sample_strategy"])
    parser.add_argument("--epochs-b", type=int, default=defaults["epochs_b"])
    parser.add_argument("--epochs-c", type=int, default=defaults["epochs_c"])
    parser.add_argument(
        "--new-row-init", choices=["mean", "random"], default=defaults["new_row_init"]
    )
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--time-budget", type=float, default=None, help="seconds; skip later runs once spent"
    )
    parser.add_argument(
        "--name", default="offline_experiment", help="result file name under --results-dir"
    )
    parser.add_argument(
        "--results-dir", type=Path, default=Path(__file__).resolve().parent / "results"
    )
    return parser.parse_args(argv)


def load_dataset(name: str, args: argparse.Namespace) -> ExperimentData:
    if name == "movielens":
        return load_movielens()
    return synthetic_stream(
        SyntheticStream(
            history_days=args.history_days,
            retained_days=args.retained_days,
            online_days=1,
            test_days=2,
            rows_per_day=args.rows_per_day,
            drift_online_day=None,
        )
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("bench").setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    defaults = params_defaults()
    settings = OfflineSettings(
        teacher_epochs=args.teacher_epochs,
        distill_lr_embedding=args.distill_lr_embedding,
        distill_lr_dense=defaults["distill_lr_dense"],
        distill_batch_size=defaults["distill_batch_size"],
        alpha=defaults["alpha"],
        temperature=defaults["temperature"],
        sample_ratio=args.sample_ratio,
        sample_strategy=args.sample_strategy,
        epochs_b=args.epochs_b,
        epochs_c=args.epochs_c,
        new_row_init=args.new_row_init,
    )
    started = time.perf_counter()
    records: list[dict[str, Any]] = []
    coverage: dict[str, Any] = {}
    described: dict[str, Any] = {}
    unfinished: list[str] = []
    methods = tuple(args.methods)

    for dataset_name in args.datasets:
        data = load_dataset(dataset_name, args)
        described[data.name] = data.summary()
        coverage[data.name] = vocabulary_coverage(data)
        seeds = args.seeds if dataset_name == "movielens" else (args.synthetic_seeds or args.seeds)
        for seed_index in range(seeds):
            seed = SEED_BASE + seed_index
            teachers: dict[tuple[str, int], TeacherRun] = {}
            for pair in PAIRS[: args.pairs]:
                label = f"{data.name} {pair[0]}({pair[1]})->{pair[2]}({pair[3]}) seed {seed}"
                if args.time_budget and time.perf_counter() - started > args.time_budget:
                    unfinished.append(label)
                    continue
                if (pair[0], pair[1]) not in teachers:
                    teachers[(pair[0], pair[1])] = train_teacher(
                        data, pair[0], pair[1], seed, settings
                    )
                teacher = teachers[(pair[0], pair[1])]
                runs = run_pair(data, teacher, pair, seed, settings, methods)
                for method, metrics in runs.items():
                    records.append(
                        {
                            "dataset": data.name,
                            "pair": f"{pair[0]}({pair[1]})->{pair[2]}({pair[3]})",
                            "seed": seed,
                            "method": method,
                            **metrics,
                        }
                    )
        del data

    summary = summarize(records)
    payload = {
        "command": command_line(),
        "finished_utc": now_utc(),
        "wall_seconds": time.perf_counter() - started,
        "threads": args.threads,
        "machine": machine_info(),
        "settings": asdict(settings),
        "datasets": described,
        "coverage": coverage,
        "records": records,
        "summary": summary,
        "target_check": target_check(summary),
        "unfinished": unfinished,
    }
    payload = _finite_or_none(copy.deepcopy(payload))
    write_results(args.name, payload, render_markdown(payload), args.results_dir)
    return payload


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    return value


if __name__ == "__main__":
    main()
