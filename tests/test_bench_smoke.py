"""Smoke runs of the benchmarks in bench/ on a few thousand rows: they finish and report
numbers that agree with what they measured."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
FUXICTR_VENV = BENCH_DIR / ".venv-fuxictr"


def load_bench_module(name: str) -> ModuleType:
    """Import bench/<name>.py (bench is a folder of scripts, not a package)."""
    sys.path.insert(0, str(BENCH_DIR))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_teacher_table_pca_error_matches_spectrum(tmp_path: Path) -> None:
    transfer_speed = load_bench_module("transfer_speed")
    path = tmp_path / "table.npy"
    transfer_speed.write_teacher_table(path, 20_000, 8)
    table = np.load(path)

    assert table.shape == (20_000, 8)
    assert table.dtype == np.float32
    # Variances are 0.81**k: dropping the last 4 of 8 keeps all but 0.81**4 / (1 + 0.81**4).
    centred = table - table.mean(axis=0)
    eigenvalues = np.linalg.eigvalsh(centred.T @ centred / len(table))[::-1]
    assert eigenvalues[0] == pytest.approx(1.0, rel=0.05)
    assert eigenvalues[4] / eigenvalues[0] == pytest.approx(0.81**4, rel=0.1)


def test_copy_table_writes_student_shape(tmp_path: Path) -> None:
    transfer_speed = load_bench_module("transfer_speed")
    source = tmp_path / "teacher.npy"
    np.save(source, np.arange(30, dtype=np.float32).reshape(10, 3))
    destination = tmp_path / "student.npy"

    transfer_speed.copy_table(source, destination, 5, chunk_rows=4)
    copied = np.load(destination)

    assert copied.shape == (10, 5)
    np.testing.assert_array_equal(copied[:, :3], np.load(source))
    np.testing.assert_array_equal(copied[:, 3:], 0.0)


def test_transfer_speed_smoke_run(tmp_path: Path) -> None:
    transfer_speed = load_bench_module("transfer_speed")
    transfer_speed.main(
        [
            "--rows",
            "3000",
            "6000",
            "--budget-mb",
            "8",
            "--iterative-cap-s",
            "2",
            "--work-dir",
            str(tmp_path / "work"),
            "--results-dir",
            str(tmp_path / "results"),
        ]
    )
    payload = json.loads((tmp_path / "results" / "transfer_speed.json").read_text())

    assert [(r["rows"], r["method"]) for r in payload["records"]] == [
        (3000, "expand"),
        (3000, "reduce"),
        (6000, "expand"),
        (6000, "reduce"),
    ]
    for record in payload["records"]:
        assert record["ratio_to_copy"] == pytest.approx(
            record["transfer"]["seconds"] / record["copy"]["seconds"]
        )
        assert record["transfer"]["peak_anon_bytes"] > 0
        assert record["transfer"]["peak_rss_bytes"] >= record["transfer"]["peak_anon_bytes"]
    reduce_error = payload["records"][-1]["transfer"]["stats"]["relative_reconstruction_error"]
    assert 0.0 < reduce_error < 0.1
    assert [fit["student_dim"] for fit in payload["iterative"]] == [64, 32]
    assert all(fit["steps"] > 0 for fit in payload["iterative"])
    assert "| 6,000 | 64 -> 32 (reduce)" in (tmp_path / "results" / "transfer_speed.md").read_text()


def run_throughput(tmp_path: Path, *extra: str) -> dict:
    throughput = load_bench_module("throughput")
    throughput.main(
        [
            "--rows",
            "4000",
            "--test-rows",
            "2000",
            "--batch-size",
            "1024",
            "--hidden-units",
            "16",
            "--work-dir",
            str(tmp_path / "work"),
            "--results-dir",
            str(tmp_path / "results"),
            *extra,
        ]
    )
    return json.loads((tmp_path / "results" / "throughput.json").read_text())


def test_throughput_smoke_run_ours(tmp_path: Path) -> None:
    payload = run_throughput(tmp_path, "--skip-fuxictr", "--zoo-rows", "0")

    assert payload["complete"] is True
    assert payload["fuxictr_skipped"] == "--skip-fuxictr given"
    assert [r["arch"] for r in payload["comparison"]] == ["dnn", "dcnv2"]
    for result in payload["comparison"]:
        assert result["train_rows"] == 4000
        assert result["test_rows"] == 2000
        assert result["rows_per_s"] == pytest.approx(4000 / result["train_seconds"])
        assert 0.0 <= result["test_auc"] <= 1.0
        assert result["threads"] == 2


@pytest.mark.skipif(
    not (FUXICTR_VENV / "bin" / "python").is_file(),
    reason="bench/.venv-fuxictr does not exist: run bench/setup_fuxictr.sh",
)
def test_throughput_smoke_run_fuxictr(tmp_path: Path) -> None:
    payload = run_throughput(tmp_path, "--zoo-rows", "0")

    libraries = [(r["library"], r["arch"]) for r in payload["comparison"]]
    assert libraries == [
        ("crossadapt", "dnn"),
        ("fuxictr 2.3.10", "dnn"),
        ("crossadapt", "dcnv2"),
        ("fuxictr 2.3.10", "dcnv2"),
    ]
    fuxictr_runs = payload["comparison"][1::2]
    ours = payload["comparison"][0::2]
    for theirs, mine in zip(fuxictr_runs, ours, strict=True):
        assert theirs["train_rows"] == 4000
        assert theirs["test_rows"] == 2000
        assert 0.0 <= theirs["test_auc"] <= 1.0
        # Same fields, dims and layers on both sides: only the vocabulary sizes may differ.
        assert theirs["parameters"] == pytest.approx(mine["parameters"], rel=0.05)


def test_airflow_overhead_summary_and_report() -> None:
    # tests/test_airflow_e2e.py covers a real Airflow run. This test checks the arithmetic
    # and the report of bench/airflow_overhead.py on recorded timings.
    airflow_overhead = load_bench_module("airflow_overhead")
    cli = [{"step": "ingest", "seconds": 4.0}, {"step": "validate", "seconds": 10.0}]
    airflow = {
        "run_id": "manual__1",
        "start_up_seconds": 60.0,
        "observed_seconds": 25.0,
        "run_wall_seconds": 22.0,
        "tasks": [
            {
                "step": "ingest",
                "seconds": 6.0,
                "start_date": "2026-12-04T10:00:01+00:00",
                "end_date": "2026-12-04T10:00:07+00:00",
            },
            {
                "step": "validate",
                "seconds": 12.0,
                "start_date": "2026-12-04T10:00:10+00:00",
                "end_date": "2026-12-04T10:00:22+00:00",
            },
        ],
    }
    summary = airflow_overhead.summarise(cli, airflow)

    assert summary["between_tasks_seconds"] == pytest.approx(4.0)
    assert summary["gap_seconds"] == [pytest.approx(3.0)]
    assert summary["airflow_over_cli_seconds"] == pytest.approx(8.0)
    report = airflow_overhead.render_markdown(
        {
            "machine": {"nproc": 2, "cpu_model": "cpu", "memory_gib": 23.5},
            "measured_at": "2026-12-04T10:01:00Z",
            "command": "python bench/airflow_overhead.py",
            "load_average_start": [1.0, 1.0, 1.0],
            "load_average_end": [1.0, 1.0, 1.0],
            "cli": cli,
            "airflow": airflow,
            "summary": summary,
        }
    )
    assert "| validate | 10.0 | 12.0 | +2.0 |" in report
    assert "18.2% of the run" in report


def test_sparse_step_smoke_run(tmp_path: Path) -> None:
    sparse_step = load_bench_module("sparse_step")
    sparse_step.main(
        ["--dims", "2", "--steps", "1", "--warmup", "0", "--results-dir", str(tmp_path)]
    )
    payload = json.loads((tmp_path / "sparse_step.json").read_text())

    assert payload["vocab_rows"] == sum(sparse_step.SCALE_VOCAB_SIZES)
    assert payload["results"][0]["dense_seconds"] > 0
    assert payload["results"][0]["sparse_seconds"] > 0
    assert "| 2 |" in (tmp_path / "sparse_step.md").read_text()


def test_read_partition_smoke_run(tmp_path: Path) -> None:
    read_partition = load_bench_module("read_partition")
    read_partition.main(
        ["--rows", "2000", "--results-dir", str(tmp_path), "--work-dir", str(tmp_path / "work")]
    )
    payload = json.loads((tmp_path / "read_partition.json").read_text())

    assert [row["strings"] for row in payload["results"]] == ["Python str", "Arrow strings"]
    assert all(row["frame_bytes"] > 0 for row in payload["results"])
    assert "| Arrow strings |" in (tmp_path / "read_partition.md").read_text()
