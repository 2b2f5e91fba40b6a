"""Benchmark 1: streaming embedding transfer (16 -> 64 expansion, 64 -> 32 PCA) against a plain
copy of the same bytes, and against an iterative (Adam) linear alignment on the same table.

Run from the repository root: ``.venv/bin/python bench/transfer_speed.py`` (see bench/README.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
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

logger = logging.getLogger("bench.transfer_speed")

SEED = 7
GENERATE_CHUNK_ROWS = 1_000_000
# (teacher dim, student dim): one expansion and one PCA reduction.
CASES = ((16, 64), (64, 32))
# The iterative fit counts as converged at this factor of the PCA error (exact optimum
# of the same objective, so Adam approaches it only asymptotically).
PCA_TOLERANCE = 1.01
# Expansion is lossless (error 0), which Adam cannot reach: it must get below this error.
EXPANSION_TARGET_ERROR = 1e-3
EVAL_ROWS = 100_000
EVAL_EVERY_STEPS = 50


def table_path(work_dir: Path, rows: int, dim: int) -> Path:
    """Return the path of the generated teacher table of ``rows`` x ``dim``."""
    return work_dir / f"teacher_{rows}x{dim}.npy"


def write_teacher_table(path: Path, rows: int, dim: int, seed: int = SEED) -> None:
    """Write a float32 ``rows x dim`` table with a decaying spectrum, chunk by chunk.

    Row ``i`` is ``mean + (z_i * 0.9**k) Q`` with ``z_i ~ N(0, I)``, ``k = 0..dim-1`` and a
    fixed random rotation ``Q``, so PCA to fewer columns loses a known, non-zero share.
    """
    if path.is_file() and np.load(path, mmap_mode="r").shape == (rows, dim):
        return
    rng = np.random.default_rng([seed, rows, dim])
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    scales = 0.9 ** np.arange(dim)
    mean = 0.1 * rng.standard_normal(dim)
    mixing = (scales[:, None] * rotation).astype(np.float32)
    temp_path = path.with_suffix(".tmp.npy")
    table = np.lib.format.open_memmap(temp_path, mode="w+", dtype=np.float32, shape=(rows, dim))
    for start in range(0, rows, GENERATE_CHUNK_ROWS):
        stop = min(start + GENERATE_CHUNK_ROWS, rows)
        latent = rng.standard_normal((stop - start, dim), dtype=np.float32)
        table[start:stop] = latent @ mixing + mean.astype(np.float32)
    table.flush()
    del table
    os.replace(temp_path, path)


def copy_table(src: Path, dst: Path, d_s: int, chunk_rows: int) -> None:
    """Read ``src`` chunk by chunk and write a table of ``d_s`` columns to ``dst``, then fsync.

    The physical limit of a transfer: the same reads and writes, no arithmetic. Output
    chunk ``i`` contains input chunk ``i`` truncated or zero-padded to ``d_s`` columns. Like
    the library's streaming transfer, it reads with ``readinto`` into one reused buffer and
    writes with ``write``, so neither file is mapped into the process.
    """
    source = np.load(src, mmap_mode="r")
    n_rows, d_t = source.shape
    offset = int(source.offset)
    del source
    header = {"descr": "<f4", "fortran_order": False, "shape": (n_rows, d_s)}
    buffer = np.empty((min(chunk_rows, n_rows), d_t), dtype=np.float32)
    output = np.zeros((buffer.shape[0], d_s), dtype=np.float32)
    width = min(d_t, d_s)
    with open(src, "rb", buffering=0) as reader, open(dst, "wb") as stream:
        reader.seek(offset)
        np.lib.format.write_array_header_1_0(stream, header)
        for start in range(0, n_rows, chunk_rows):
            rows = min(chunk_rows, n_rows - start)
            view = memoryview(buffer[:rows]).cast("B")
            filled = 0
            while filled < len(view):
                filled += reader.readinto(view[filled:])
            output[:rows, :width] = buffer[:rows, :width]
            stream.write(output[:rows].data)
        stream.flush()
        os.fsync(stream.fileno())


def relative_error_of_linear_map(sample: np.ndarray, encoder: Any, decoder: Any) -> float:
    """Return ``||X - decoder(encoder(X))||_F / ||X||_F`` on ``sample``."""
    import torch

    with torch.no_grad():
        values = torch.from_numpy(np.asarray(sample, dtype=np.float32))
        reconstruction = decoder(encoder(values))
        return float(torch.linalg.norm(values - reconstruction) / torch.linalg.norm(values))


def fit_iterative_alignment(
    src: Path, d_s: int, target_error: float, cap_seconds: float, batch_size: int = 4096
) -> dict[str, Any]:
    """Fit an affine encoder ``d_t -> d_s`` and decoder back with Adam on minibatches.

    Loss: mean squared reconstruction error of each minibatch. Training stops when the
    relative reconstruction error on ``EVAL_ROWS`` evenly spaced rows reaches
    ``target_error``, or after ``cap_seconds``. This is the iterative alternative to the
    closed-form transfer: with biases, its optimum is centred PCA (Baldi and Hornik, 1989).
    """
    import torch

    torch.manual_seed(SEED)
    source = np.load(src, mmap_mode="r")
    n_rows, d_t = source.shape
    sample = np.asarray(source[np.linspace(0, n_rows - 1, min(EVAL_ROWS, n_rows)).astype(int)])
    encoder = torch.nn.Linear(d_t, d_s)
    decoder = torch.nn.Linear(d_s, d_t)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=1e-2)
    rng = np.random.default_rng(SEED)

    started = time.perf_counter()
    steps = 0
    error = relative_error_of_linear_map(sample, encoder, decoder)
    reached = error <= target_error
    while not reached and time.perf_counter() - started < cap_seconds:
        for _ in range(EVAL_EVERY_STEPS):
            start = int(rng.integers(0, max(n_rows - batch_size, 0) + 1))
            batch = torch.from_numpy(np.array(source[start : start + batch_size]))
            loss = torch.mean((decoder(encoder(batch)) - batch) ** 2)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps += 1
        error = relative_error_of_linear_map(sample, encoder, decoder)
        reached = error <= target_error
    return {
        "seconds": time.perf_counter() - started,
        "steps": steps,
        "batch_size": batch_size,
        "final_relative_error": error,
        "target_relative_error": target_error,
        "reached_target": reached,
        "cap_seconds": cap_seconds,
    }


def run_worker(args: argparse.Namespace) -> None:
    """Run one timed operation in this (fresh) process and emit its time and memory peaks."""
    from crossadapt.transfer.projection import (
        chunk_rows_for_budget,
        streaming_expand,
        streaming_pca_reduce,
    )

    src = Path(args.src)
    d_t = np.load(src, mmap_mode="r").shape[1]
    result: dict[str, Any] = {"op": args.op}
    with MemorySampler() as sampler:
        started = time.perf_counter()
        if args.op == "copy":
            chunk_rows = chunk_rows_for_budget(args.budget_bytes, d_t, args.d_s)
            copy_table(src, Path(args.dst), args.d_s, chunk_rows)
        elif args.op == "expand":
            stats = streaming_expand(src, args.dst, args.d_s, SEED, args.budget_bytes)
            result["stats"] = stats.to_dict()
        elif args.op == "reduce":
            stats = streaming_pca_reduce(src, args.dst, args.d_s, args.budget_bytes)
            result["stats"] = stats.to_dict()
        else:
            result.update(
                fit_iterative_alignment(src, args.d_s, args.target_error, args.cap_seconds)
            )
        result["seconds"] = result.get("seconds", time.perf_counter() - started)
    result["peak_rss_bytes"] = sampler.peak_rss_bytes
    result["peak_anon_bytes"] = sampler.peak_anon_bytes
    emit_result(result)


def measure(
    op: str, src: Path, dst: Path, d_s: int, args: argparse.Namespace, **extra: Any
) -> dict:
    """Run ``op`` in a fresh Python process; return its result."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "worker",
        "--op",
        op,
        "--src",
        str(src),
        "--dst",
        str(dst),
        "--d-s",
        str(d_s),
        "--budget-bytes",
        str(args.budget_mb * 2**20),
    ]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", str(value)]
    result = run_child(command)
    dst.unlink(missing_ok=True)
    logger.info("%s %s -> %d: %.2f s", op, src.name, d_s, result["seconds"])
    return result


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Time copy and streaming transfer at every size, then the iterative fit at the largest."""
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    rows_list = sorted(args.rows)
    budget_bytes = args.budget_mb * 2**20
    records: list[dict[str, Any]] = []
    iterative: list[dict[str, Any]] = []

    for rows in rows_list:
        for d_t, d_s in CASES:
            src = table_path(work_dir, rows, d_t)
            started = time.perf_counter()
            write_teacher_table(src, rows, d_t)
            logger.info("table %s ready in %.1f s", src.name, time.perf_counter() - started)
            dst = work_dir / f"student_{rows}x{d_s}.npy"
            op = "expand" if d_s > d_t else "reduce"

            # A copy before and one after the transfer; the faster one is the reference.
            # The first copy starts while the kernel may still be writing the freshly
            # generated table back to disk, which slows that copy down.
            copies = [measure("copy", src, dst, d_s, args)]
            transfer = measure(op, src, dst, d_s, args)
            copies.append(measure("copy", src, dst, d_s, args))
            copy = min(copies, key=lambda result: result["seconds"])
            records.append(
                {
                    "rows": rows,
                    "teacher_dim": d_t,
                    "student_dim": d_s,
                    "method": op,
                    "input_bytes": rows * d_t * 4,
                    "output_bytes": rows * d_s * 4,
                    "copy": copy,
                    "copy_seconds_both": [result["seconds"] for result in copies],
                    "transfer": transfer,
                    "ratio_to_copy": transfer["seconds"] / copy["seconds"],
                    "transfer_rows_per_s": rows / transfer["seconds"],
                    "copy_rows_per_s": rows / copy["seconds"],
                }
            )

            if rows == rows_list[-1] and args.iterative_cap_s > 0:
                target = (
                    transfer["stats"]["relative_reconstruction_error"] * PCA_TOLERANCE
                    if op == "reduce"
                    else EXPANSION_TARGET_ERROR
                )
                fit = measure(
                    "iterative",
                    src,
                    dst,
                    d_s,
                    args,
                    target_error=target,
                    cap_seconds=args.iterative_cap_s,
                )
                fit.update(
                    rows=rows,
                    teacher_dim=d_t,
                    student_dim=d_s,
                    closed_form_seconds=transfer["seconds"],
                    closed_form_relative_error=transfer["stats"]["relative_reconstruction_error"],
                )
                iterative.append(fit)
        if not args.keep_tables:
            for d_t, _ in CASES:
                table_path(work_dir, rows, d_t).unlink(missing_ok=True)

    return {
        "benchmark": "transfer_speed",
        "measured_at": now_utc(),
        "command": command_line(),
        "machine": machine_info(),
        "memory_budget_bytes": budget_bytes,
        "threads": 2,
        "records": records,
        "iterative": iterative,
    }


def render_markdown(payload: dict[str, Any]) -> str:
    """Return the Markdown report of a transfer benchmark payload."""
    machine = payload["machine"]
    lines = [
        "# Transfer speed: streaming projection against a plain copy\n",
        f"Measured {payload['measured_at']} on {machine['nproc']} CPUs ({machine['cpu_model']}), "
        f"{machine['memory_gib']} GiB memory, {payload['threads']} threads, memory budget "
        f"{mib(payload['memory_budget_bytes'])} MiB. Every operation ran in a fresh process.\n",
        f"Command: `{payload['command']}`\n",
        "Peak RSS counts the pages of the memory-mapped input and output files that were "
        "resident; peak anonymous memory is the private (heap) part.\n",
    ]
    rows = []
    for record in payload["records"]:
        copy, transfer = record["copy"], record["transfer"]
        rows.append(
            [
                f"{record['rows']:,}",
                f"{record['teacher_dim']} -> {record['student_dim']} ({record['method']})",
                f"{copy['seconds']:.2f}",
                f"{transfer['seconds']:.2f}",
                f"{record['ratio_to_copy']:.2f}",
                f"{record['transfer_rows_per_s']:,.0f}",
                f"{mib(copy['peak_anon_bytes'])} / {mib(copy['peak_rss_bytes'])}",
                f"{mib(transfer['peak_anon_bytes'])} / {mib(transfer['peak_rss_bytes'])}",
                f"{transfer.get('stats', {}).get('relative_reconstruction_error', 0.0):.4g}",
            ]
        )
    lines.append(
        markdown_table(
            [
                "rows",
                "case",
                "copy s (faster of 2)",
                "transfer s",
                "transfer / copy",
                "transfer rows/s",
                "copy peak anon / RSS MiB",
                "transfer peak anon / RSS MiB",
                "relative error",
            ],
            rows,
        )
    )
    if payload["iterative"]:
        lines.append("\n## Iterative alignment (Adam, affine encoder and decoder)\n")
        fits = []
        for fit in payload["iterative"]:
            fits.append(
                [
                    f"{fit['rows']:,}",
                    f"{fit['teacher_dim']} -> {fit['student_dim']}",
                    f"{fit['closed_form_seconds']:.2f}",
                    f"{fit['closed_form_relative_error']:.4g}",
                    f"{fit['target_relative_error']:.4g}",
                    f"{fit['seconds']:.1f}",
                    f"{fit['steps']}",
                    f"{fit['final_relative_error']:.4g}",
                    "yes" if fit["reached_target"] else f"no (cap {fit['cap_seconds']:.0f} s)",
                    f"{mib(fit['peak_anon_bytes'])}",
                ]
            )
        lines.append(
            markdown_table(
                [
                    "rows",
                    "case",
                    "closed form s",
                    "closed form error",
                    "target error",
                    "Adam s",
                    "Adam steps",
                    "Adam error",
                    "reached",
                    "Adam peak anon MiB",
                ],
                fits,
            )
        )
        lines.append(
            "\nAdam time counts fitting only (no pass that writes the student table), with the "
            f"error measured on {EVAL_ROWS:,} evenly spaced rows every {EVAL_EVERY_STEPS} steps.\n"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    subcommands = parser.add_subparsers(dest="command")

    worker = subcommands.add_parser("worker", help="internal: run one timed operation")
    worker.add_argument("--op", choices=["copy", "expand", "reduce", "iterative"], required=True)
    worker.add_argument("--src", required=True)
    worker.add_argument("--dst", required=True)
    worker.add_argument("--d-s", type=int, required=True)
    worker.add_argument("--budget-bytes", type=int, required=True)
    worker.add_argument("--target-error", type=float, default=0.0)
    worker.add_argument("--cap-seconds", type=float, default=60.0)

    parser.add_argument(
        "--rows",
        type=int,
        nargs="+",
        default=[2_000_000, 10_000_000],
        help="table sizes in rows; the iterative fit runs on the largest (default 2M 10M)",
    )
    parser.add_argument("--budget-mb", type=int, default=64, help="memory budget in MiB")
    parser.add_argument(
        "--iterative-cap-s",
        type=float,
        default=60.0,
        help="time cap in seconds of each iterative fit; 0 skips it (default 60)",
    )
    parser.add_argument("--work-dir", default=str(WORK_DIR / "transfer"), help="table folder")
    parser.add_argument(
        "--results-dir", default=None, help="where results go (default bench/results)"
    )
    parser.add_argument("--keep-tables", action="store_true", help="keep the generated tables")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "worker":
        run_worker(args)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    payload = run_benchmark(args)
    kwargs = {"results_dir": Path(args.results_dir)} if args.results_dir else {}
    paths = write_results("transfer_speed", payload, render_markdown(payload), **kwargs)
    logger.info("results written to %s", ", ".join(str(path) for path in paths))


if __name__ == "__main__":
    main()
