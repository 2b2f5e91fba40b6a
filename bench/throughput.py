"""Benchmark 2: training throughput, peak memory and test AUC of our DNN and DCN-V2 against
FuxiCTR 2.3.10 on the same synthetic parquet files, and throughput of every model of our zoo.

Run from the repository root: ``.venv/bin/python bench/throughput.py`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    BENCH_DIR,
    WORK_DIR,
    MemorySampler,
    command_line,
    emit_result,
    machine_info,
    markdown_table,
    mib,
    now_utc,
    run_child,
    write_results,
)

logger = logging.getLogger("bench.throughput")

FUXICTR_PYTHON = BENCH_DIR / ".venv-fuxictr" / "bin" / "python"
COMPARED_ARCHS = ("dnn", "dcnv2")
SEED = 2024


def synthetic_config(rows: int) -> Any:
    """Return the generator settings: one day of ``rows`` rows, 26 categorical, 13 numeric."""
    from crossadapt.data.synthetic import SyntheticConfig

    return SyntheticConfig(n_days=1, rows_per_day=rows, n_categorical=26, n_numeric=13, seed=0)


def prepare_data(train_rows: int, test_rows: int, work_dir: Path) -> tuple[Path, Path]:
    """Generate one synthetic day and split it in time order into two parquet files.

    The first ``train_rows`` rows go to ``train_<train_rows>.parquet`` and the last
    ``test_rows`` to ``test_<train_rows>_<test_rows>.parquet``. Existing files are reused.
    """
    import pyarrow.parquet as pq

    from crossadapt.data.synthetic import generate_day

    train_path = work_dir / f"train_{train_rows}.parquet"
    test_path = work_dir / f"test_{train_rows}_{test_rows}.parquet"
    if train_path.is_file() and test_path.is_file():
        return train_path, test_path

    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    frame = generate_day(synthetic_config(train_rows + test_rows), 0)
    frame.iloc[:train_rows].to_parquet(train_path.with_suffix(".tmp"), index=False)
    frame.iloc[train_rows:].to_parquet(test_path.with_suffix(".tmp"), index=False)
    train_path.with_suffix(".tmp").replace(train_path)
    test_path.with_suffix(".tmp").replace(test_path)
    logger.info(
        "wrote %s (%d rows) and %s (%d rows) in %.1f s",
        train_path,
        pq.read_metadata(train_path).num_rows,
        test_path,
        pq.read_metadata(test_path).num_rows,
        time.perf_counter() - started,
    )
    return train_path, test_path


def read_frame(path: str) -> Any:
    """Read a parquet file with Arrow-backed string columns, as `partitions.read_day` does."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    strings = pd.StringDtype("pyarrow")
    mapping = {pa.string(): strings, pa.large_string(): strings}
    return pq.read_table(path).to_pandas(types_mapper=mapping.get)


def train_ours(args: argparse.Namespace) -> dict[str, Any]:
    """Fit the schema, encode, train one epoch of ``args.arch`` and score the test file."""
    import torch

    from crossadapt.data.encoding import encode
    from crossadapt.data.schema import fit_schema
    from crossadapt.data.synthetic import synthetic_field_defs
    from crossadapt.models.registry import build_model
    from crossadapt.training.metrics import evaluate_predictions
    from crossadapt.training.trainer import TrainConfig, predict, train

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    train_frame = read_frame(args.train)
    if args.train_rows_limit:
        train_frame = train_frame.iloc[: args.train_rows_limit]
    config = synthetic_config(1)
    day = config.day(0)
    schema = fit_schema(
        [train_frame], synthetic_field_defs(config), args.min_count, (day, day), "synthetic"
    ).with_embedding_dims(args.embedding_dim)
    train_encoded = encode(train_frame, schema)
    del train_frame
    test_encoded = encode(read_frame(args.test), schema)
    prepare_seconds = time.perf_counter() - started

    model = build_model(
        args.arch,
        schema,
        {
            "hidden_units": args.hidden_units,
            "weight_init": args.weight_init,
            "sparse_gradients": args.sparse_gradients,
        },
    )
    train_config = TrainConfig(
        epochs=1,
        batch_size=args.batch_size,
        lr_embedding=args.learning_rate,
        lr_dense=args.learning_rate,
        early_stopping_patience=None,
        seed=SEED,
        max_grad_norm=10.0,
        shuffle=True,
    )
    result = train(model, train_encoded, None, train_config)
    metrics = evaluate_predictions(test_encoded.label, predict(model, test_encoded))
    train_rows = len(train_encoded)
    return {
        "library": "crossadapt",
        "arch": args.arch,
        "options": f"weight_init {args.weight_init}"
        + (", sparse_gradients" if args.sparse_gradients else ""),
        "train_rows": train_rows,
        "train_seconds": result.train_seconds,
        "rows_per_s": train_rows / result.train_seconds,
        "prepare_seconds": prepare_seconds,
        "test_rows": len(test_encoded),
        "test_auc": float(metrics["auc"]),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def run_worker(args: argparse.Namespace) -> None:
    """Train one model in this (fresh) process and emit its result with memory peaks."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with MemorySampler() as sampler:
        result = train_ours(args)
    result["peak_rss_bytes"] = sampler.peak_rss_bytes
    result["peak_anon_bytes"] = sampler.peak_anon_bytes
    emit_result(result)


def shared_options(args: argparse.Namespace) -> list[str]:
    """Return the options both libraries' runs get, so the configurations match."""
    return [
        "--embedding-dim",
        str(args.embedding_dim),
        "--hidden-units",
        *[str(units) for units in args.hidden_units],
        "--batch-size",
        str(args.batch_size),
        "--learning-rate",
        str(args.learning_rate),
        "--min-count",
        str(args.min_count),
        "--threads",
        str(args.threads),
    ]


def run_ours(
    arch: str,
    train_path: Path,
    test_path: Path,
    args: argparse.Namespace,
    rows_limit: int = 0,
    sparse_gradients: bool = False,
) -> dict[str, Any]:
    """Train ``arch`` with our trainer in a fresh process; return its result."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "worker",
        "--arch",
        arch,
        "--train",
        str(train_path),
        "--test",
        str(test_path),
        "--train-rows-limit",
        str(rows_limit),
        "--weight-init",
        args.weight_init,
        *(["--sparse-gradients"] if sparse_gradients else []),
        *shared_options(args),
    ]
    result = run_child(command, threads=args.threads)
    result["command"] = " ".join(["python", "bench/throughput.py", *command[2:]])
    logger.info("ours %s: %.0f rows/s, AUC %.4f", arch, result["rows_per_s"], result["test_auc"])
    return result


def run_fuxictr(
    arch: str, train_path: Path, test_path: Path, args: argparse.Namespace
) -> dict[str, Any]:
    """Train ``arch`` with FuxiCTR in a fresh process of the FuxiCTR venv; return its result."""
    config = synthetic_config(1)
    from crossadapt.data.synthetic import categorical_columns, numeric_columns

    work_dir = Path(args.work_dir) / f"fuxictr_{arch}"
    command = [
        str(FUXICTR_PYTHON),
        str(BENCH_DIR / "fuxictr_runner.py"),
        "--arch",
        arch,
        "--train",
        str(train_path),
        "--test",
        str(test_path),
        "--work-dir",
        str(work_dir),
        "--categorical",
        *categorical_columns(config),
        "--numeric",
        *numeric_columns(config),
        *shared_options(args),
    ]
    result = run_child(command, threads=args.threads)
    result["command"] = " ".join(["bench/.venv-fuxictr/bin/python", *command[1:]])
    logger.info("fuxictr %s: %.0f rows/s, AUC %.4f", arch, result["rows_per_s"], result["test_auc"])
    return result


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Run the comparison on ``args.rows`` rows (unless ``--skip-comparison``), then the zoo
    on the first ``args.zoo_rows`` of them."""
    from crossadapt.models.registry import architecture_names

    work_dir = Path(args.work_dir)
    train_path, test_path = prepare_data(args.rows, args.test_rows, work_dir)
    comparison: list[dict[str, Any]] = []
    fuxictr_skipped = None
    if args.skip_fuxictr:
        fuxictr_skipped = "--skip-fuxictr given"
    elif not FUXICTR_PYTHON.is_file():
        fuxictr_skipped = f"{FUXICTR_PYTHON} not found: run bench/setup_fuxictr.sh"

    zoo: list[dict[str, Any]] = []
    payload = {
        "benchmark": "throughput",
        "measured_at": now_utc(),
        "command": command_line(),
        "machine": machine_info(),
        "train_rows": args.rows,
        "test_rows": args.test_rows,
        "zoo_rows": args.zoo_rows,
        "embedding_dim": args.embedding_dim,
        "hidden_units": args.hidden_units,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "min_count": args.min_count,
        "threads": args.threads,
        "fuxictr_skipped": fuxictr_skipped,
        "comparison_skipped": args.skip_comparison,
        "weight_init": args.weight_init,
        "comparison": comparison,
        "zoo": zoo,
        "complete": False,
        "load_average_start": list(os.getloadavg()),
        "load_average_end": None,
    }

    # Results are rewritten after every run, so an interrupted run still leaves its numbers.
    for arch in () if args.skip_comparison else COMPARED_ARCHS:
        comparison.append(run_ours(arch, train_path, test_path, args))
        save_results(payload, args)
        if fuxictr_skipped is None:
            comparison.append(run_fuxictr(arch, train_path, test_path, args))
            save_results(payload, args)
        if args.with_sparse:
            comparison.append(run_ours(arch, train_path, test_path, args, sparse_gradients=True))
            save_results(payload, args)
    if args.zoo_rows > 0:
        for arch in architecture_names():
            zoo.append(run_ours(arch, train_path, test_path, args, rows_limit=args.zoo_rows))
            save_results(payload, args)
    payload["complete"] = True
    payload["load_average_end"] = list(os.getloadavg())
    return payload


def save_results(payload: dict[str, Any], args: argparse.Namespace) -> None:
    """Write the JSON and Markdown results of ``payload`` as they are now."""
    kwargs = {"results_dir": Path(args.results_dir)} if args.results_dir else {}
    paths = write_results("throughput", payload, render_markdown(payload), **kwargs)
    logger.info("results written to %s", ", ".join(str(path) for path in paths))


def render_markdown(payload: dict[str, Any]) -> str:
    """Return the Markdown report of a throughput benchmark payload."""
    machine = payload["machine"]
    lines = [
        "# Training throughput: CrossAdapt against FuxiCTR 2.3.10\n",
        f"Measured {payload['measured_at']} on {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB memory, torch threads {payload['threads']}.\n",
        f"Command: `{payload['command']}`\n",
        f"Data: {payload['train_rows']:,} training rows and {payload['test_rows']:,} later test "
        "rows of one synthetic day (26 categorical, 13 numeric fields). Both sides: embedding "
        f"dim {payload['embedding_dim']}, hidden units {payload['hidden_units']}, batch "
        f"{payload['batch_size']}, one shuffled epoch, Adam lr {payload['learning_rate']} on all "
        f"parameters, gradient norm clipped at 10, vocabulary min count {payload['min_count']}. "
        f"Our models use `weight_init: {payload.get('weight_init', 'torch')}` (FuxiCTR always "
        "uses its Xavier scheme). "
        "Rows/s counts the training loop only; peak RSS is of the whole process (data "
        "loading, encoding, training and scoring).\n",
    ]
    if not payload["complete"]:
        lines.append("**Partial results: the run was still going or was interrupted.**\n")
    if payload.get("load_average_start"):
        end = payload.get("load_average_end")
        lines.append(
            "Load average (1, 5, 15 min) at start: "
            + ", ".join(f"{value:.2f}" for value in payload["load_average_start"])
            + "; at end: "
            + (", ".join(f"{value:.2f}" for value in end) if end else "not recorded")
            + ". The machine has 2 CPUs, so a load above 2 means other jobs shared them.\n"
        )
    for note in payload.get("notes", []):
        lines.append(f"{note}\n")
    if payload["fuxictr_skipped"]:
        lines.append(f"FuxiCTR runs skipped: {payload['fuxictr_skipped']}.\n")
    lines.append(
        markdown_table(
            [
                "library",
                "arch",
                "options",
                "rows/s",
                "train s",
                "test AUC",
                "peak RSS MiB",
                "parameters",
            ],
            [
                [
                    result["library"],
                    result["arch"],
                    result.get("options", ""),
                    f"{result['rows_per_s']:,.0f}",
                    f"{result['train_seconds']:.1f}",
                    f"{result['test_auc']:.4f}",
                    f"{mib(result['peak_rss_bytes'])}",
                    f"{result['parameters']:,}",
                ]
                for result in payload["comparison"]
            ],
        )
    )
    if payload["zoo"]:
        lines.append(f"\n## Our zoo on the first {payload['zoo_rows']:,} training rows\n")
        lines.append(
            markdown_table(
                ["arch", "rows/s", "train s", "test AUC", "peak RSS MiB", "command"],
                [
                    [
                        result["arch"],
                        f"{result['rows_per_s']:,.0f}",
                        f"{result['train_seconds']:.1f}",
                        f"{result['test_auc']:.4f}",
                        f"{mib(result['peak_rss_bytes'])}",
                        f"`{result['command']}`",
                    ]
                    for result in payload["zoo"]
                ],
            )
        )
    lines.append("\nEach run's exact command is in throughput.json (`command`).\n")
    return "\n".join(lines)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--hidden-units", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--min-count", type=int, default=2, help="vocabulary min count")
    parser.add_argument("--threads", type=int, default=2, help="torch and BLAS threads")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    subcommands = parser.add_subparsers(dest="command")
    worker = subcommands.add_parser("worker", help="internal: train one of our models")
    worker.add_argument("--arch", required=True)
    worker.add_argument("--train", required=True)
    worker.add_argument("--test", required=True)
    worker.add_argument("--train-rows-limit", type=int, default=0, help="0 = all rows")
    worker.add_argument("--weight-init", choices=["torch", "xavier"], default="xavier")
    worker.add_argument("--sparse-gradients", action="store_true")
    add_model_options(worker)

    parser.add_argument("--rows", type=int, default=2_000_000, help="training rows")
    parser.add_argument("--test-rows", type=int, default=200_000, help="held-out test rows")
    parser.add_argument(
        "--zoo-rows", type=int, default=1_000_000, help="rows of the zoo runs; 0 skips them"
    )
    parser.add_argument("--skip-fuxictr", action="store_true", help="run our side only")
    parser.add_argument(
        "--skip-comparison", action="store_true", help="run the zoo only (no DNN/DCN-V2 table)"
    )
    parser.add_argument(
        "--weight-init",
        choices=["torch", "xavier"],
        default="xavier",
        help="our models' weight_init; xavier is FuxiCTR's scheme, so the default matches it",
    )
    parser.add_argument(
        "--with-sparse",
        action="store_true",
        help="also train ours with sparse_gradients: true (lazy Adam; not FuxiCTR's optimizer)",
    )
    parser.add_argument("--work-dir", default=str(WORK_DIR / "throughput"), help="data folder")
    parser.add_argument(
        "--results-dir", default=None, help="where results go (default bench/results)"
    )
    add_model_options(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "worker":
        run_worker(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    payload = run_benchmark(args)
    save_results(payload, args)


if __name__ == "__main__":
    main()
