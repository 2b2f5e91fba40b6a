"""Paths that the pipeline steps read and write: every path under data/ and artifacts/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Layout:
    """Paths of one project checkout, relative to ``root``."""

    root: Path
    data_dir: Path
    artifacts_dir: Path
    dataset: str

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "raw" / self.dataset

    @property
    def partitions_dir(self) -> Path:
        return self.data_dir / "partitions" / self.dataset

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine" / self.dataset

    def step_dir(self, step: str) -> Path:
        """Folder of one offline step's outputs (``teacher``, ``sample``, ``transfer`` ...)."""
        return self.artifacts_dir / step

    @property
    def teacher_checkpoint(self) -> Path:
        return self.step_dir("teacher") / "teacher.pt"

    @property
    def teacher_schema(self) -> Path:
        return self.step_dir("teacher") / "schema.json"

    @property
    def sample_file(self) -> Path:
        return self.step_dir("sample") / "sample.npz"

    @property
    def student_init_checkpoint(self) -> Path:
        return self.step_dir("transfer") / "student_init.pt"

    @property
    def student_schema(self) -> Path:
        return self.step_dir("transfer") / "schema.json"

    @property
    def distilled_student_checkpoint(self) -> Path:
        return self.step_dir("distill") / "student.pt"

    def online_day_dir(self, day: str) -> Path:
        return self.artifacts_dir / "online" / day

    @property
    def ledger_file(self) -> Path:
        return self.artifacts_dir / "online" / "ledger.json"

    @property
    def lock_file(self) -> Path:
        return self.artifacts_dir / ".crossadapt.lock"

    def metrics_file(self, step: str) -> Path:
        return self.step_dir(step) / "metrics.json"
