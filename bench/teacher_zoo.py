"""Train each architecture of the model zoo as the teacher on MovieLens-100K; record metrics.

Each architecture goes through the real ``train-teacher`` step (tasks/train_teacher.py)
with the split of params.yaml: trained on 1997-09..1998-02, scored on the online days
(1998-03) and the test days (1998-04). Writes ``bench/results/teacher_zoo.{json,md}``.

    .venv/bin/python bench/teacher_zoo.py                 # all architectures
    .venv/bin/python bench/teacher_zoo.py --archs dnn dcnv2 --epochs 1
    .venv/bin/python bench/teacher_zoo.py --archs dnn dcnv2 --weight-init torch xavier \
        --seeds 0 1 --name teacher_init       # PyTorch's init against FuxiCTR's Xavier
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def run(
    archs: list[str],
    epochs: int | None,
    embedding_dim: int,
    weight_inits: list[str] | None = None,
    seeds: list[int] | None = None,
) -> dict:
    """Train one teacher per architecture and return the metrics of each."""
    import torch

    from crossadapt.config.params import load_params
    from crossadapt.models.registry import architecture_names
    from tasks import train_teacher

    torch.set_num_threads(2)
    results = []
    cases = [
        (arch, weight_init, seed)
        for arch in archs or architecture_names()
        for weight_init in weight_inits or ["torch"]
        for seed in seeds or [0]
    ]
    for arch, weight_init, seed in cases:
        overrides = {
            "seed": seed,
            "teacher.arch": arch,
            "teacher.embedding_dim": embedding_dim,
            "teacher.weight_init": weight_init,
            "paths.artifacts_dir": f"bench/work/teacher_zoo/{arch}",
        }
        if epochs is not None:
            overrides["teacher.epochs"] = epochs
        params = load_params(ROOT / "params.yaml", overrides=overrides)
        started = time.perf_counter()
        metrics = train_teacher.run(params)
        results.append(
            {
                "arch": arch,
                "weight_init": weight_init,
                "seed": seed,
                "epochs_run": metrics["best_epoch"],
                "train_seconds": metrics["train_seconds"],
                "step_seconds": time.perf_counter() - started,
                "online_days": metrics["online_days"],
                "test": metrics["test"],
            }
        )
    return {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform()},
        "embedding_dim": embedding_dim,
        "results": results,
    }


def render_markdown(payload: dict) -> str:
    """Format the results as a Markdown table."""
    lines = [
        "# Teacher architectures on MovieLens-100K",
        "",
        f"Command: `{payload['command']}`. Trained on 1997-09..1998-02 (the last 10% of rows",
        "by time is the early-stopping validation set), scored on the online days 1998-03",
        f"and the test days 1998-04. Embedding dim {payload['embedding_dim']} for every field.",
        "",
        "| arch | weight_init | seed | AUC 1998-03 | LogLoss 1998-03 | bias 1998-03 "
        "| AUC 1998-04 | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in payload["results"]:
        online, test = row["online_days"], row["test"]
        lines.append(
            f"| {row['arch']} | {row.get('weight_init', 'torch')} | {row.get('seed', 0)} "
            f"| {online['auc']:.4f} | {online['log_loss']:.4f} "
            f"| {online['prediction_bias']:+.4f} | {test['auc']:.4f} "
            f"| {row['train_seconds']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", nargs="*", default=[], help="architectures (default: all)")
    parser.add_argument("--epochs", type=int, default=None, help="teacher.epochs override")
    parser.add_argument("--embedding-dim", type=int, default=8, help="dim of every field")
    parser.add_argument(
        "--weight-init",
        nargs="+",
        default=["torch"],
        choices=["torch", "xavier"],
        help="teacher.weight_init values to compare (default: torch)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="params seeds")
    parser.add_argument("--name", default="teacher_zoo", help="results file name")
    args = parser.parse_args(argv)

    payload = run(args.archs, args.epochs, args.embedding_dim, args.weight_init, args.seeds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(payload, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(render_markdown(payload))
    print(render_markdown(payload))
    return 0


if __name__ == "__main__":
    sys.exit(main())
