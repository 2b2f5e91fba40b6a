"""The DVC pipeline on a small synthetic project: full repro, no-op repro, param changes,
experiments, metrics and plots."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import ONLINE_DAYS, dvc

from crossadapt.storage.checkpoint import load_checkpoint

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ALL_STAGES = [
    "fetch_data",
    "ingest",
    "validate",
    "train_teacher",
    "sample",
    "transfer",
    "distill",
    "shadow_evaluate",
    *(f"online_day@{day}" for day in ONLINE_DAYS),
    "report",
]


def stages_ran(output: str) -> list[str]:
    """Names of the stages dvc printed ``Running stage '<name>'`` for, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def changed_stages(project: Path) -> dict[str, object]:
    """Stages that ``dvc status --json`` reports as changed, with their changes."""
    return json.loads(dvc(project, "status", "--json").stdout)


def test_repro_builds_every_stage(reproduced_project: Path) -> None:
    lock = yaml.safe_load((reproduced_project / "dvc.lock").read_text())["stages"]
    assert sorted(lock) == sorted(ALL_STAGES)

    final = json.loads((reproduced_project / "artifacts" / "report" / "final.json").read_text())
    assert 0.0 <= final["test"]["student_auc"] <= 1.0
    assert final["test"]["rows"] > 0
    assert final["flagged_days"] == [ONLINE_DAYS[1]]
    assert (reproduced_project / "artifacts" / "report" / "evaluation_report.html").is_file()
    assert load_checkpoint(reproduced_project / "artifacts" / "distill" / "student.pt").arch == (
        "deepfm"
    )


def test_second_repro_runs_nothing(
    reproduced_project: Path, project_copy: Callable[[Path], Path]
) -> None:
    project = project_copy(reproduced_project)

    result = dvc(project, "repro")

    assert stages_ran(result.stdout) == []
    assert "Data and pipelines are up to date" in result.stdout
    assert changed_stages(project) == {}


def test_param_change_marks_only_dependents(
    reproduced_project: Path, project_copy: Callable[[Path], Path]
) -> None:
    project = project_copy(reproduced_project)
    dvc(project, "params", "diff")  # parses params.yaml before the change
    params_file = project / "params.yaml"
    params = yaml.safe_load(params_file.read_text())
    params["distill"]["alpha"] = 0.4
    params_file.write_text(yaml.safe_dump(params, sort_keys=False))

    # Only the stage that reads distill.* changed; nothing upstream of it.
    assert sorted(changed_stages(project)) == ["distill"]

    result = dvc(project, "repro", "distill")
    assert stages_ran(result.stdout) == ["distill"]

    # Its new checkpoint now invalidates exactly the stages that read it directly.
    assert sorted(changed_stages(project)) == sorted(
        ["shadow_evaluate", f"online_day@{ONLINE_DAYS[0]}"]
    )


def test_exp_run_with_new_student_arch(
    reproduced_project: Path, project_copy: Callable[[Path], Path]
) -> None:
    project = project_copy(reproduced_project)

    # Up to shadow_evaluate keeps the test short; the online days reuse the same mechanism.
    result = dvc(project, "exp", "run", "--set-param", "student.arch=dnn", "shadow_evaluate")

    assert stages_ran(result.stdout) == ["transfer", "distill", "shadow_evaluate"]
    assert load_checkpoint(project / "artifacts" / "distill" / "student.pt").arch == "dnn"
    experiments = json.loads(dvc(project, "exp", "show", "--json").stdout)
    archs = {
        experiment.get("name"): experiment["data"]["params"]["params.yaml"]["data"]["student"][
            "arch"
        ]
        for baseline in experiments
        for experiment in baseline.get("experiments") or []
        for experiment in experiment["revs"]
    }
    assert "dnn" in archs.values()


def test_metrics_and_plots_show(
    reproduced_project: Path, project_copy: Callable[[Path], Path]
) -> None:
    project = project_copy(reproduced_project)

    metrics_by_revision = json.loads(dvc(project, "metrics", "show", "--json").stdout)
    metrics = next(iter(metrics_by_revision.values()))["data"]
    final = metrics["artifacts/report/final.json"]["data"]
    assert 0.0 <= final["test"]["student_auc"] <= 1.0
    assert "artifacts/distill/metrics.json" in metrics
    assert f"artifacts/online/{ONLINE_DAYS[-1]}/metrics.json" in metrics

    plots = json.loads(dvc(project, "plots", "show", "--json").stdout)["data"]
    auc_plot = plots["AUC per online day"][0]["content"]["data"]["values"]
    assert sorted({row["day"] for row in auc_plot}) == ONLINE_DAYS
    assert {row["field"] for row in auc_plot} == {"teacher_auc", "student_auc"}
    assert "Drift score per online day" in plots
