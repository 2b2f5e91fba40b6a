"""Smoke runs of the offline and online experiments on a tiny synthetic stream."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH_DIR))

import offline_experiment  # noqa: E402
import online_experiment  # noqa: E402

TINY_STREAM = ["--datasets", "synthetic", "--rows-per-day", "1500", "--history-days", "2"]
TINY_STREAM += ["--retained-days", "2", "--teacher-epochs", "1", "--seeds", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def offline_payload(tmp_path_factory: pytest.TempPathFactory) -> dict:
    results_dir = tmp_path_factory.mktemp("offline")
    offline_experiment.main([*TINY_STREAM, "--pairs", "1", "--results-dir", str(results_dir)])
    return json.loads((results_dir / "offline_experiment.json").read_text())


@pytest.fixture(scope="module")
def online_payload(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    results_dir = tmp_path_factory.mktemp("online")
    online_experiment.main(
        [
            *TINY_STREAM,
            "--online-days",
            "2",
            "--drift-online-day",
            "1",
            "--days",
            "2",
            "--results-dir",
            str(results_dir),
        ]
    )
    return json.loads((results_dir / "online_experiment.json").read_text()), results_dir


def test_offline_summary_has_every_method(offline_payload: dict) -> None:
    methods = {row["method"] for row in offline_payload["summary"]}
    assert methods == set(offline_experiment.METHODS)


def test_offline_aucs_are_finite(offline_payload: dict) -> None:
    for row in offline_payload["summary"]:
        assert row["auc_mean"] is not None, row["method"]
        assert 0.0 < row["auc_mean"] < 1.0, row["method"]
        assert math.isfinite(row["train_seconds_mean"]), row["method"]


def test_offline_target_check_compares_with_scratch(offline_payload: dict) -> None:
    assert len(offline_payload["target_check"]) == 1
    assert offline_payload["target_check"][0]["pair"] == "dnn(8)->dcnv2(16)"


def test_online_summary_has_every_method(online_payload: tuple[dict, Path]) -> None:
    payload, _ = online_payload
    summary = payload["datasets"]["synthetic"]["summary"]
    assert {row["method"] for row in summary} == set(online_experiment.METHODS)


def test_online_aucs_are_finite(online_payload: tuple[dict, Path]) -> None:
    payload, _ = online_payload
    for row in payload["datasets"]["synthetic"]["summary"]:
        for key in ("test_auc_mean", "progressive_auc_mean", "progressive_after_drift_auc_mean"):
            assert row[key] is not None, (row["method"], key)
            assert 0.0 < row[key] < 1.0, (row["method"], key)


def test_online_drift_measured_once_per_day(online_payload: tuple[dict, Path]) -> None:
    payload, _ = online_payload
    seed = payload["datasets"]["synthetic"]["seeds"][0]
    assert len(seed["drift"]) == 2
    for day in seed["drift"]:
        assert 0.0 <= day["drift_score"] <= 1.0


def test_online_adaptive_weights_follow_drift(online_payload: tuple[dict, Path]) -> None:
    payload, _ = online_payload
    seed = payload["datasets"]["synthetic"]["seeds"][0]
    for index, day in enumerate(seed["drift"]):
        used = seed["methods"]["crossadapt"]["days"][index]["training"]
        assert used["alpha"] == pytest.approx(day["adapted"]["alpha"])
        fixed = seed["methods"]["crossadapt_fixed"]["days"][index]["training"]
        assert fixed["alpha"] == pytest.approx(0.7)
        assert fixed["teacher_update_interval"] == 10


def test_online_curves_plot_written(online_payload: tuple[dict, Path]) -> None:
    _, results_dir = online_payload
    plot = results_dir / "online_curves_synthetic.png"
    assert plot.stat().st_size > 1000
