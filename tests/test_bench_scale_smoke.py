"""Smoke tests of bench/scale.py and bench/pipeline_overhead.py on tiny inputs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import pipeline_overhead  # noqa: E402
import scale  # noqa: E402

from crossadapt.config.params import load_params  # noqa: E402


def test_scaled_vocab_sizes_sum_to_target() -> None:
    sizes = scale.scaled_vocab_sizes(10_000_000)

    assert len(sizes) == 26
    assert min(sizes) >= 2
    assert abs(sum(sizes) - 10_000_000) < 100


def test_project_params_load_and_split(tmp_path: Path) -> None:
    params = scale.project_params(
        rows=1000, days=10, total_ids=500, min_count=2, batch_size=256, seed=0
    )
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))

    loaded = load_params(path)

    assert loaded.dataset.synthetic["rows_per_day"] == 100
    assert len(loaded.split.history_days()) == 6
    assert len(loaded.split.retained_days()) == 2
    assert loaded.split.online_days() == ["2020-01-09"]
    assert loaded.split.test_days() == ["2020-01-10"]
    assert loaded.features.min_count == 2
    assert loaded.data_dir() == tmp_path / "data"


def test_scale_ingest_only_writes_results(tmp_path: Path) -> None:
    results = tmp_path / "results"
    status = scale.main(
        [
            "--rows", "2000", "--days", "5", "--distinct-ids", "300", "--ingest-only",
            "--work-dir", str(tmp_path / "work"), "--results-dir", str(results),
        ]
    )  # fmt: skip

    payload = json.loads((results / "scale.json").read_text())
    run = payload["runs"][0]
    assert status == 0
    assert [step["step"] for step in run["steps"]] == ["ingest"]
    assert run["steps"][0]["exit_code"] == 0
    assert run["completed"] is True
    assert run["steps"][0]["peak_rss_mib"] > 10
    assert run["ingest_rows_per_second"] > 0
    assert "| ingest |" in (results / "scale.md").read_text()


def test_part_timer_counts_nested_calls_once() -> None:
    timer = pipeline_overhead.PartTimer()

    def inner() -> None:
        time.sleep(0.05)

    timed_inner = timer.wrap(inner, "inner")

    def outer() -> None:
        time.sleep(0.05)
        timed_inner()

    timed_outer = timer.wrap(outer, "outer")
    with timer.step("step"):
        timed_outer()
        time.sleep(0.02)

    parts = timer.breakdown()["step"]
    assert 0.04 <= parts["inner"] < 0.09
    assert 0.04 <= parts["outer"] < 0.09
    assert timer.inclusive["step"]["outer"] >= 0.1
    assert parts[pipeline_overhead.OTHER_PART] >= 0.015
    covered = parts["inner"] + parts["outer"] + parts[pipeline_overhead.OTHER_PART]
    assert abs(covered - parts["step wall"]) < 0.02
