"""Time one training step of a DNN with dense against sparse embedding gradients.

Run from the repository root: ``.venv/bin/python bench/sparse_step.py`` (see bench/SCALE.md).
The model is the library's DNN (hidden units [128, 64]) on 26 categorical fields, with the
vocabulary sizes that the 20M-row scale run fitted (4.3M rows in all). It is built once
with ``sparse_gradients`` false (``torch.optim.Adam``) and once with true
(``SparseAwareAdam``), each optimizer from ``make_optimizer``. Each step draws 4,096
rows of Zipf-distributed ids, runs forward, backward and the optimizer step. The script
reports the mean of ``--steps`` steps after ``--warmup`` steps, per embedding dim.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import command_line, machine_info, markdown_table, now_utc, write_results

# Vocabulary sizes of the 26 categorical fields fitted by `bench/scale.py --rows 20000000`.
SCALE_VOCAB_SIZES = [
    456, 184, 1001376, 502863, 95, 10, 3909, 202, 4, 28932, 1773, 939113, 982,
    10, 4662, 7, 40, 5, 1754, 670, 4, 883235, 7, 6, 88484, 36,
]  # fmt: skip


def make_schema(dim: int) -> Any:
    """Return a schema of 26 categorical fields with ``SCALE_VOCAB_SIZES`` rows each."""
    from crossadapt.data.schema import FeatureSchema, FieldSpec

    # Only the vocabulary's length matters here (it sets the table's rows), so every
    # token is the same empty string: 8 bytes a row instead of one string object each.
    fields = tuple(
        FieldSpec(f"c{index}", "categorical", "context", vocabulary=("",) * (size - 2))
        for index, size in enumerate(SCALE_VOCAB_SIZES)
    )
    return FeatureSchema("bench", ("2020-01-01", "2020-01-06"), fields).with_embedding_dims(dim)


def time_steps(dim: int, sparse: bool, batch_size: int, warmup: int, steps: int) -> float:
    """Return the mean seconds of one training step."""
    import numpy as np
    import torch
    import torch.nn.functional as functional

    from crossadapt.models.batch import Batch
    from crossadapt.models.registry import build_model
    from crossadapt.training.trainer import make_optimizer

    torch.manual_seed(0)
    model = build_model("dnn", make_schema(dim), {"sparse_gradients": sparse})
    optimizer = make_optimizer(model, 0.01, 0.001)
    generator = np.random.default_rng(0)

    def batch() -> Batch:
        ids = [
            np.minimum(generator.zipf(1.1, size=batch_size), size - 1) for size in SCALE_VOCAB_SIZES
        ]
        return Batch(
            categorical=torch.as_tensor(np.stack(ids, axis=1), dtype=torch.long),
            multi_valued=torch.zeros((batch_size, 0, 1), dtype=torch.long),
            numeric=torch.zeros((batch_size, 0)),
            label=torch.as_tensor(generator.integers(0, 2, batch_size), dtype=torch.float32),
        )

    batches = [batch() for _ in range(warmup + steps)]
    started = 0.0
    for index, rows in enumerate(batches):
        if index == warmup:
            started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        functional.binary_cross_entropy_with_logits(model(rows), rows.label).backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--results-dir", default=None, help="where results go (bench/results)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    load_start = list(os.getloadavg())
    rows = []
    for dim in args.dims:
        dense = time_steps(dim, False, args.batch_size, args.warmup, args.steps)
        sparse = time_steps(dim, True, args.batch_size, args.warmup, args.steps)
        rows.append({"dim": dim, "dense_seconds": dense, "sparse_seconds": sparse})
        print(f"dim {dim}: dense {dense:.3f} s, sparse {sparse:.3f} s a step", flush=True)
    payload = {
        "benchmark": "sparse_step",
        "measured_at": now_utc(),
        "command": command_line(),
        "machine": machine_info(),
        "threads": args.threads,
        "batch_size": args.batch_size,
        "vocab_rows": sum(SCALE_VOCAB_SIZES),
        "load_average_start": load_start,
        "load_average_end": list(os.getloadavg()),
        "results": rows,
    }
    markdown = "\n".join(
        [
            "# One DNN training step: dense against sparse embedding gradients\n",
            f"Measured {payload['measured_at']}, {args.threads} torch thread(s), batch "
            f"{args.batch_size}, 26 fields with {payload['vocab_rows']:,} rows in all. Command: "
            f"`{payload['command']}`. Load average at start "
            f"{', '.join(f'{value:.2f}' for value in load_start)}.\n",
            markdown_table(
                ["dim", "dense Adam s/step", "sparse (lazy Adam) s/step", "dense / sparse"],
                [
                    [
                        row["dim"],
                        f"{row['dense_seconds']:.3f}",
                        f"{row['sparse_seconds']:.3f}",
                        f"{row['dense_seconds'] / row['sparse_seconds']:.1f}x",
                    ]
                    for row in rows
                ],
            ),
        ]
    )
    kwargs = {"results_dir": Path(args.results_dir)} if args.results_dir else {}
    write_results("sparse_step", payload, markdown, **kwargs)


if __name__ == "__main__":
    main()
