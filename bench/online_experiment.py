"""Online stage of CrossAdapt against its baselines: a full migration per seed, day by day.

Run from the repository root: ``.venv/bin/python bench/online_experiment.py`` (see
bench/EXPERIMENTS.md). Each model is evaluated on a day before it trains on it
(progressive validation), then on the test days. Results go to bench/results/.
"""

from __future__ import annotations

import argparse
import copy
import logging
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, machine_info, markdown_table, now_utc, write_results
from experiment_data import (
    ExperimentData,
    SyntheticStream,
    load_movielens,
    synthetic_stream,
)
from offline_experiment import (
    SEED_BASE,
    OfflineSettings,
    StudentRun,
    TeacherRun,
    evaluate,
    params_defaults,
    train_crossadapt,
    train_scratch,
    train_standard_kd,
    train_teacher,
)

if TYPE_CHECKING:
    from crossadapt.data.encoding import EncodedFrame
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.models.base import CTRModel

logger = logging.getLogger("bench.online_experiment")

PAIR = ("dnn", 8, "dcnv2", 16)
METHODS: tuple[str, ...] = (
    "crossadapt",
    "crossadapt_fixed",
    "teacher_online",
    "scratch_online",
    "standard_kd",
    "frozen_teacher",
    "symmetric_k1",
    "no_replay",
)
METHOD_NOTES = {
    "crossadapt": "CrossAdapt student, co-distillation, weights adapted to the day's drift score",
    "crossadapt_fixed": "CrossAdapt student, co-distillation, alpha 0.7, replay 0.1, k 10",
    "teacher_online": "the teacher alone, trained on each day's labels (production today)",
    "scratch_online": "scratch student (retained window only), then each day's labels",
    "standard_kd": "standard-KD student, then KD from the frozen teacher (k = infinity)",
    "frozen_teacher": "CrossAdapt student, fixed weights, teacher frozen online (k = infinity)",
    "symmetric_k1": "CrossAdapt student, fixed weights, teacher steps every batch (k = 1)",
    "no_replay": "CrossAdapt with adaptive weights but no replay of the retained window",
}
DRIFT_REFERENCE_ROWS = 5_000


@dataclass(frozen=True)
class OnlineSettings:
    """Settings of the online stage (params.yaml ``online:`` and ``adaptation:`` defaults)."""

    batch_size: int = 256
    alpha: float = 0.7
    temperature: float = 4.0
    replay_ratio: float = 0.1
    teacher_update_interval: int = 10
    lr_embedding: float = 0.01
    lr_dense: float = 0.001


@dataclass
class MethodState:
    """One method's models during the online days.

    ``teacher`` is None for the labels-only methods. ``weights`` is ``adaptive`` or
    ``fixed``; ``replay_ratio`` and ``teacher_update_interval`` override the fixed weights.
    """

    name: str
    model: CTRModel
    schema: FeatureSchema
    optimizer: Any
    teacher: CTRModel | None = None
    teacher_optimizer: Any = None
    weights: str = "fixed"
    replay_ratio: float | None = None
    teacher_update_interval: int | None = None
    train_seconds: float = 0.0
    days: list[dict[str, Any]] = field(default_factory=list)
    pooled_labels: list[np.ndarray] = field(default_factory=list)
    pooled_probs: list[np.ndarray] = field(default_factory=list)
    pooled_after_drift: list[bool] = field(default_factory=list)


def online_optimizer(model: CTRModel, settings: OnlineSettings, state: dict | None = None) -> Any:
    """Build Adam with the online learning rates, restoring ``state`` (a state dict) first."""
    from crossadapt.training.trainer import make_optimizer

    optimizer = make_optimizer(model, settings.lr_embedding, settings.lr_dense)
    if state is not None:
        optimizer.load_state_dict(state)
        for group in optimizer.param_groups:
            is_embedding = group.get("name") == "embedding"
            group["lr"] = settings.lr_embedding if is_embedding else settings.lr_dense
    return optimizer


def build_states(
    teacher: TeacherRun,
    crossadapt: StudentRun,
    scratch: StudentRun,
    standard_kd: StudentRun,
    settings: OnlineSettings,
    methods: tuple[str, ...],
) -> dict[str, MethodState]:
    """Give every method its own copies of the models it starts the online days from."""
    states: dict[str, MethodState] = {}

    def codistill_state(name: str, student: StudentRun, **options: Any) -> MethodState:
        teacher_copy = copy.deepcopy(teacher.model)
        model = copy.deepcopy(student.model)
        return MethodState(
            name=name,
            model=model,
            schema=student.schema,
            optimizer=online_optimizer(model, settings),
            teacher=teacher_copy,
            teacher_optimizer=online_optimizer(
                teacher_copy, settings, teacher.optimizer.state_dict()
            ),
            **options,
        )

    for name in methods:
        if name == "crossadapt":
            states[name] = codistill_state(name, crossadapt, weights="adaptive")
        elif name == "crossadapt_fixed":
            states[name] = codistill_state(name, crossadapt)
        elif name == "no_replay":
            states[name] = codistill_state(name, crossadapt, weights="adaptive", replay_ratio=0.0)
        elif name == "frozen_teacher":
            states[name] = codistill_state(name, crossadapt, teacher_update_interval=0)
        elif name == "symmetric_k1":
            states[name] = codistill_state(name, crossadapt, teacher_update_interval=1)
        elif name == "standard_kd":
            states[name] = codistill_state(name, standard_kd, teacher_update_interval=0)
        elif name == "teacher_online":
            model = copy.deepcopy(teacher.model)
            states[name] = MethodState(
                name,
                model,
                teacher.schema,
                online_optimizer(model, settings, teacher.optimizer.state_dict()),
            )
        elif name == "scratch_online":
            model = copy.deepcopy(scratch.model)
            states[name] = MethodState(
                name, model, scratch.schema, online_optimizer(model, settings)
            )
        else:
            raise ValueError(f"unknown method {name!r}; use one of {list(METHODS)}")
    return states


def train_labels_day(model: CTRModel, optimizer: Any, frame: EncodedFrame, batch_size: int) -> None:
    """Stream one day in time order and take one Adam step per batch on the BCE of the labels."""
    import torch.nn.functional as functional

    from crossadapt.models.batch import Batch

    model.train()
    for start in range(0, len(frame), batch_size):
        batch = Batch.from_encoded(frame, np.arange(start, min(len(frame), start + batch_size)))
        loss = functional.binary_cross_entropy_with_logits(model(batch), batch.label)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def measure_day_drift(
    data: ExperimentData,
    day: str,
    reference: Any,
    reference_encoded: EncodedFrame,
    teacher: CTRModel,
    teacher_schema: FeatureSchema,
    seed: int,
) -> dict[str, Any]:
    """Compute the day's drift score against a retained-window sample, with the current teacher."""
    from crossadapt.monitoring.drift import compute_drift
    from crossadapt.monitoring.validation import FeatureColumns
    from crossadapt.training.trainer import predict

    raw = dict(data.online_days)[day]
    result = compute_drift(
        reference,
        raw,
        FeatureColumns.from_schema(teacher_schema.to_dict()),
        teacher_probs_ref=predict(teacher, reference_encoded),
        teacher_probs_cur=predict(teacher, data.encoded(day, teacher_schema)),
        seed=seed,
    )
    return {
        "drift_score": result.drift_score,
        "share_drifted": result.share_drifted,
        "prediction_drift": result.prediction_drift,
        "teacher_bias": result.teacher_bias,
        "flagged": result.flagged,
        "seconds": result.seconds,
    }


def run_day(
    state: MethodState,
    teacher_schema: FeatureSchema,
    frame: EncodedFrame,
    replay: EncodedFrame | None,
    adapted: Any,
    settings: OnlineSettings,
    day: str,
    seed: int,
) -> dict[str, Any]:
    """Train one method on one day; return the weights it used."""
    from crossadapt.online.codistill import CoDistillConfig, codistill_day, teacher_view_of

    started = time.perf_counter()
    if state.teacher is None:
        train_labels_day(state.model, state.optimizer, frame, settings.batch_size)
        weights: dict[str, Any] = {"labels_only": True}
    else:
        if state.weights == "adaptive":
            alpha = adapted.alpha
            replay_ratio = adapted.replay_ratio
            interval = adapted.teacher_update_interval
        else:
            alpha, replay_ratio = settings.alpha, settings.replay_ratio
            interval = settings.teacher_update_interval
        if state.replay_ratio is not None:
            replay_ratio = state.replay_ratio
        if state.teacher_update_interval is not None:
            interval = state.teacher_update_interval
        config = CoDistillConfig(
            batch_size=settings.batch_size,
            alpha=alpha,
            temperature=settings.temperature,
            replay_ratio=replay_ratio,
            teacher_update_interval=interval,
            seed=seed,
        )
        codistill_day(
            state.teacher,
            state.model,
            state.teacher_optimizer,
            state.optimizer,
            frame,
            replay,
            config,
            day=day,
            teacher_view=teacher_view_of(teacher_schema, state.schema),
        )
        weights = {
            "alpha": alpha,
            "replay_ratio": replay_ratio,
            "teacher_update_interval": interval,
        }
    seconds = time.perf_counter() - started
    state.train_seconds += seconds
    return {**weights, "train_seconds": seconds}


def run_seed(
    data: ExperimentData,
    seed: int,
    offline: OfflineSettings,
    settings: OnlineSettings,
    methods: tuple[str, ...],
) -> dict[str, Any]:
    """Run the offline stage, then every online day for every method, then the test days."""
    from crossadapt.data.encoding import encode
    from crossadapt.online.adaptation import AdaptationConfig
    from crossadapt.training.metrics import evaluate_predictions
    from crossadapt.training.trainer import predict

    started = time.perf_counter()
    t_arch, t_dim, s_arch, s_dim = PAIR
    teacher = train_teacher(data, t_arch, t_dim, seed, offline)
    crossadapt = train_crossadapt(data, teacher, s_arch, s_dim, seed, offline)
    scratch = train_scratch(data, s_arch, s_dim, seed, offline)
    standard_kd = train_standard_kd(data, teacher, s_arch, s_dim, seed, offline)
    offline_test = {
        "teacher": evaluate(teacher.model, data, "test", teacher.schema),
        "crossadapt": evaluate(crossadapt.model, data, "test", crossadapt.schema),
        "scratch": evaluate(scratch.model, data, "test", scratch.schema),
        "standard_kd": evaluate(standard_kd.model, data, "test", standard_kd.schema),
    }
    states = build_states(teacher, crossadapt, scratch, standard_kd, settings, methods)
    replay = data.encoded("retained", crossadapt.schema)

    rng = np.random.default_rng(seed)
    keep = min(len(data.retained), DRIFT_REFERENCE_ROWS)
    rows = np.sort(rng.choice(len(data.retained), size=keep, replace=False))
    reference = data.retained.iloc[rows].reset_index(drop=True)
    reference_encoded = encode(reference, teacher.schema)
    adaptation = AdaptationConfig()
    drift_teacher = states["crossadapt"].teacher if "crossadapt" in states else teacher.model

    drift_days: list[dict[str, Any]] = []
    after_drift = False
    for day, _ in data.online_days:
        after_drift = after_drift or (data.drift_day is not None and day >= data.drift_day)
        for state in states.values():
            frame = data.encoded(day, state.schema)
            probs = predict(state.model, frame)
            metrics = evaluate_predictions(frame.label, probs)
            state.days.append({"day": day, **metrics})
            state.pooled_labels.append(frame.label)
            state.pooled_probs.append(probs)
            state.pooled_after_drift.append(after_drift)

        drift = measure_day_drift(
            data, day, reference, reference_encoded, drift_teacher, teacher.schema, seed
        )
        adapted = adaptation.weights_for_day(
            drift["drift_score"],
            alpha=settings.alpha,
            replay_ratio=settings.replay_ratio,
            teacher_update_interval=settings.teacher_update_interval,
        )
        drift_days.append({"day": day, **drift, "adapted": adapted.to_dict()})

        for state in states.values():
            frame = data.encoded(day, state.schema)
            state.days[-1]["training"] = run_day(
                state, teacher.schema, frame, replay, adapted, settings, day, seed
            )
        logger.info(
            "%s seed %d day %s: drift %.3f, AUC %s",
            data.name,
            seed,
            day,
            drift["drift_score"],
            ", ".join(f"{name} {state.days[-1]['auc']:.4f}" for name, state in states.items()),
        )

    results: dict[str, Any] = {}
    for name, state in states.items():
        results[name] = {
            "test": evaluate(state.model, data, "test", state.schema),
            "online_train_seconds": state.train_seconds,
            "days": state.days,
            "progressive": _pooled(state, None),
            "progressive_before_drift": _pooled(state, False),
            "progressive_after_drift": _pooled(state, True),
        }
        if state.teacher is not None:
            results[name]["teacher_test"] = evaluate(state.teacher, data, "test", teacher.schema)
    logger.info("%s seed %d done in %.1f s", data.name, seed, time.perf_counter() - started)
    return {
        "seed": seed,
        "offline_test": offline_test,
        "offline_seconds": {
            "teacher": teacher.train_seconds,
            "crossadapt": crossadapt.train_seconds,
            "scratch": scratch.train_seconds,
            "standard_kd": standard_kd.train_seconds,
        },
        "drift": drift_days,
        "methods": results,
        "seconds": time.perf_counter() - started,
    }


def _pooled(state: MethodState, after_drift: bool | None) -> dict[str, Any] | None:
    from crossadapt.training.metrics import evaluate_predictions

    chosen = [
        index
        for index, flag in enumerate(state.pooled_after_drift)
        if after_drift is None or flag == after_drift
    ]
    if not chosen:
        return None
    labels = np.concatenate([state.pooled_labels[index] for index in chosen])
    probs = np.concatenate([state.pooled_probs[index] for index in chosen])
    return evaluate_predictions(labels, probs)


def summarize(dataset: str, seeds: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Compute the mean and std over seeds of each method's test and progressive metrics."""
    rows = []
    for method in seeds[0]["methods"]:
        row: dict[str, Any] = {"dataset": dataset, "method": method, "seeds": len(seeds)}
        values = {
            "test_auc": [seed["methods"][method]["test"]["auc"] for seed in seeds],
            "test_log_loss": [seed["methods"][method]["test"]["log_loss"] for seed in seeds],
            "test_prediction_bias": [
                seed["methods"][method]["test"]["prediction_bias"] for seed in seeds
            ],
            "online_train_seconds": [
                seed["methods"][method]["online_train_seconds"] for seed in seeds
            ],
        }
        for part in ("progressive", "progressive_before_drift", "progressive_after_drift"):
            pooled = [seed["methods"][method][part] for seed in seeds]
            if all(item is not None for item in pooled):
                values[f"{part}_auc"] = [item["auc"] for item in pooled]
                values[f"{part}_log_loss"] = [item["log_loss"] for item in pooled]
        for key, items in values.items():
            finite = [value for value in items if value is not None and math.isfinite(value)]
            row[f"{key}_mean"] = statistics.fmean(finite) if finite else math.nan
            row[f"{key}_std"] = statistics.stdev(finite) if len(finite) > 1 else 0.0
        rows.append(row)
    return rows


def daily_curves(seeds: list[dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Average the AUC per day and method, and the drift score per day, over seeds."""
    days = [entry["day"] for entry in seeds[0]["drift"]]
    curves: dict[str, dict[str, list[float]]] = {"days": {"day": days}}  # type: ignore[dict-item]
    for method in seeds[0]["methods"]:
        auc = [
            _nan_mean([seed["methods"][method]["days"][index]["auc"] for seed in seeds])
            for index in range(len(days))
        ]
        curves[method] = {"auc": auc}
    curves["drift_score"] = {
        "mean": [
            _nan_mean([seed["drift"][index]["drift_score"] for seed in seeds])
            for index in range(len(days))
        ]
    }
    return curves


def _nan_mean(values: list[float | None]) -> float:
    finite = [value for value in values if value is not None and math.isfinite(value)]
    return statistics.fmean(finite) if finite else math.nan


def plot_curves(dataset: str, curves: dict[str, Any], drift_day: str | None, path: Path) -> None:
    """Save AUC per online day per method (mean over seeds) with the drift score below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = curves["days"]["day"]
    positions = list(range(len(days)))
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(10, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    for method in METHODS:
        if method in curves:
            style = "-" if method.startswith("crossadapt") else "--"
            top.plot(positions, curves[method]["auc"], style, marker=".", label=method)
    top.set_ylabel("AUC on the day, before training on it")
    top.set_title(f"{dataset}: progressive validation per online day (mean over seeds)")
    top.grid(alpha=0.3)
    top.legend(fontsize=8, ncol=2)
    bottom.bar(positions, curves["drift_score"]["mean"], color="tab:gray")
    bottom.set_ylabel("drift score")
    bottom.set_ylim(0, 1)
    if drift_day is not None and drift_day in days:
        for axis in (top, bottom):
            axis.axvline(days.index(drift_day) - 0.5, color="red", linestyle=":")
    step = max(1, len(days) // 10)
    bottom.set_xticks(positions[::step], [day[5:] for day in days[::step]])
    bottom.set_xlabel("online day")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.png")
    figure.savefig(temporary, dpi=110)
    plt.close(figure)
    temporary.replace(path)


def render_markdown(payload: dict[str, Any]) -> str:
    """Render the results tables of the online experiment, one per dataset."""
    lines = [
        "# Online stage: CrossAdapt against baselines and ablations",
        "",
        f"Command: `{payload['command']}`  ",
        f"Finished {payload['finished_utc']} on {payload['machine']['nproc']} CPU cores "
        f"({payload['machine']['cpu_model']}), torch threads {payload['threads']}, "
        f"{payload['wall_seconds']:.0f} s in all. Pair {payload['pair']}.",
        "",
        "Progressive: every online day's rows scored by the model before it trains on that day, "
        "pooled over the days. Test: after the last online day. Mean ± std over seeds.",
        "",
    ]
    for name, note in METHOD_NOTES.items():
        lines.append(f"- `{name}`: {note}")
    lines.append("")
    for dataset, entry in payload["datasets"].items():
        lines += [f"## {dataset}", ""]
        if entry.get("drift_day"):
            lines += [f"Abrupt drift from {entry['drift_day']} on.", ""]
        headers = ["method", "seeds", "test AUC", "test LogLoss", "test bias", "progressive AUC"]
        has_drift = any("progressive_after_drift_auc_mean" in row for row in entry["summary"])
        if has_drift:
            headers += ["AUC before drift", "AUC after drift"]
        headers.append("online train s")
        rows = []
        for row in entry["summary"]:
            cells = [
                row["method"],
                row["seeds"],
                _mean_std(row, "test_auc", ".4f"),
                _mean_std(row, "test_log_loss", ".4f"),
                _mean_std(row, "test_prediction_bias", "+.3f"),
                _mean_std(row, "progressive_auc", ".4f"),
            ]
            if has_drift:
                cells += [
                    _mean_std(row, "progressive_before_drift_auc", ".4f"),
                    _mean_std(row, "progressive_after_drift_auc", ".4f"),
                ]
            cells.append(_mean_std(row, "online_train_seconds", ".1f"))
            rows.append(cells)
        lines.append(markdown_table(headers, rows))
        drift = entry["curves"]["drift_score"]["mean"]
        lines += [
            "Mean drift score per day: "
            + ", ".join(f"{value:.2f}" for value in drift if value is not None),
            "",
            f"Curves: `{entry['plot']}`",
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
    parser.add_argument("--seeds", type=int, default=5, help="seeds on MovieLens")
    parser.add_argument("--synthetic-seeds", type=int, default=None, help="default: --seeds")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--days", type=int, default=None, help="first N online days only")
    parser.add_argument("--rows-per-day", type=int, default=50_000, help="synthetic rows per day")
    parser.add_argument("--history-days", type=int, default=10)
    parser.add_argument("--retained-days", type=int, default=4)
    parser.add_argument("--online-days", type=int, default=6, help="synthetic online days")
    parser.add_argument(
        "--drift-online-day", type=int, default=3, help="index of the first drifted online day"
    )
    # The offline stage's CrossAdapt settings default to params.yaml (distill:, sampling:).
    parser.add_argument(
        "--distill-lr-embedding", type=float, default=defaults["distill_lr_embedding"]
    )
    parser.add_argument("--sample-ratio", type=float, default=defaults["sample_ratio"])
    parser.add_argument("--epochs-b", type=int, default=defaults["epochs_b"])
    parser.add_argument("--epochs-c", type=int, default=defaults["epochs_c"])
    parser.add_argument("--teacher-epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256, help="online batch size")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--time-budget", type=float, default=None, help="seconds; skip later seeds once spent"
    )
    parser.add_argument("--name", default="online_experiment")
    parser.add_argument(
        "--results-dir", type=Path, default=Path(__file__).resolve().parent / "results"
    )
    return parser.parse_args(argv)


def load_dataset(name: str, args: argparse.Namespace) -> ExperimentData:
    if name == "movielens":
        data = load_movielens()
    else:
        data = synthetic_stream(
            SyntheticStream(
                history_days=args.history_days,
                retained_days=args.retained_days,
                online_days=args.online_days,
                test_days=2,
                rows_per_day=args.rows_per_day,
                drift_online_day=args.drift_online_day,
            )
        )
    if args.days is not None:
        data.online_days = data.online_days[: args.days]
    return data


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("bench").setLevel(logging.INFO)
    torch.set_num_threads(args.threads)
    defaults = params_defaults()
    offline = OfflineSettings(
        teacher_epochs=args.teacher_epochs,
        distill_lr_embedding=args.distill_lr_embedding,
        distill_lr_dense=defaults["distill_lr_dense"],
        distill_batch_size=defaults["distill_batch_size"],
        alpha=defaults["alpha"],
        temperature=defaults["temperature"],
        sample_ratio=args.sample_ratio,
        sample_strategy=defaults["sample_strategy"],
        epochs_b=args.epochs_b,
        epochs_c=args.epochs_c,
        new_row_init=defaults["new_row_init"],
    )
    settings = OnlineSettings(batch_size=args.batch_size)
    methods = tuple(args.methods)
    started = time.perf_counter()
    datasets: dict[str, Any] = {}
    unfinished: list[str] = []

    for dataset_name in args.datasets:
        data = load_dataset(dataset_name, args)
        count = args.seeds if dataset_name == "movielens" else (args.synthetic_seeds or args.seeds)
        seeds = []
        for seed_index in range(count):
            seed = SEED_BASE + seed_index
            if args.time_budget and time.perf_counter() - started > args.time_budget:
                unfinished.append(f"{data.name} seed {seed}")
                continue
            seeds.append(run_seed(data, seed, offline, settings, methods))
        if not seeds:
            continue
        curves = daily_curves(seeds)
        plot_path = args.results_dir / f"online_curves_{data.name}.png"
        plot_curves(data.name, curves, data.drift_day, plot_path)
        datasets[data.name] = {
            **data.summary(),
            "summary": summarize(data.name, seeds),
            "curves": curves,
            "plot": plot_path.name,
            "seeds": seeds,
        }

    payload = {
        "command": command_line(),
        "finished_utc": now_utc(),
        "wall_seconds": time.perf_counter() - started,
        "threads": args.threads,
        "machine": machine_info(),
        "pair": f"{PAIR[0]}({PAIR[1]})->{PAIR[2]}({PAIR[3]})",
        "offline_settings": asdict(offline),
        "online_settings": asdict(settings),
        "methods": {name: METHOD_NOTES[name] for name in methods},
        "datasets": datasets,
        "unfinished": unfinished,
    }
    payload = _finite_or_none(payload)
    write_results(args.name, payload, render_markdown(payload), args.results_dir)
    return payload


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite_or_none(item) for item in value]
    if isinstance(value, np.generic):
        return _finite_or_none(value.item())
    return value


if __name__ == "__main__":
    main()
