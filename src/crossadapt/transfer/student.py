"""Offline step A: build the student's schema and model from the teacher without a data pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from crossadapt.errors import ParamsError

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema
    from crossadapt.models.base import CTRModel

logger = logging.getLogger(__name__)


@dataclass
class StudentBuild:
    """The initialised student, its schema and what the transfer did per field."""

    model: CTRModel
    schema: FeatureSchema
    report: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        """Metrics of the transfer step: totals plus per-field stats."""
        errors = [
            stats["relative_reconstruction_error"]
            for stats in self.report.values()
            if stats.get("relative_reconstruction_error") is not None
        ]
        return {
            "fields": len(self.report),
            "new_rows": int(sum(stats.get("new_rows", 0) for stats in self.report.values())),
            "max_relative_reconstruction_error": float(max(errors)) if errors else 0.0,
            "transfer_seconds": self.seconds,
            "per_field": self.report,
        }


def retained_token_counts(
    frames: Iterable[pd.DataFrame], schema: FeatureSchema
) -> dict[str, dict[str, int]]:
    """Count the tokens of every categorical and multi-valued field over ``frames``."""
    from crossadapt.data.schema import as_tokens, split_multi_valued

    totals: dict[str, pd.Series] = {}
    for frame in frames:
        for spec in schema.fields:
            if spec.type == "categorical":
                tokens = as_tokens(frame[spec.name]).dropna()
            elif spec.type == "multi_valued":
                _, tokens = split_multi_valued(frame[spec.name], "|")
                tokens = pd.Series(tokens, dtype=object)
            else:
                continue
            counts = tokens.value_counts()
            previous = totals.get(spec.name)
            totals[spec.name] = counts if previous is None else previous.add(counts, fill_value=0)
    return {
        name: {str(token): int(count) for token, count in counts.items()}
        for name, counts in totals.items()
    }


def build_student(
    teacher: CTRModel,
    teacher_schema: FeatureSchema,
    retained_counts: Mapping[str, Mapping[str, int]],
    arch: str,
    embedding_dim: int | Mapping[str, int],
    model_config: Mapping[str, Any] | None,
    seed: int,
    min_count: int = 1,
    new_row_init: str = "mean",
    keep_mean: bool = False,
    transfer_embeddings: bool = True,
) -> StudentBuild:
    """Initialise a student of another architecture from the teacher's embedding tables.

    The student's vocabulary of each field is the teacher's (rows of ids seen only in the
    deleted history keep their knowledge) followed by ids that are new in the retained
    window (``retained_counts``, at least ``min_count`` times). Each teacher table is
    copied, expanded by a random orthogonal map or reduced by PCA to the student's dim
    (crossadapt.transfer.alignment.transfer_embedding_tables). The dense part keeps its
    random initialisation. ``transfer_embeddings=False`` builds the same student with
    random tables (the "no embedding transfer" ablation).
    """
    import torch

    from crossadapt.models.registry import build_model
    from crossadapt.transfer.alignment import align_vocabulary, transfer_embedding_tables

    started = time.perf_counter()
    if isinstance(embedding_dim, int) and embedding_dim < 1:
        raise ParamsError(f"student.embedding_dim is {embedding_dim}; use an integer >= 1")

    student_schema = teacher_schema.with_embedding_dims(embedding_dim)
    new_rows: dict[str, int] = {}
    for spec in teacher_schema.fields:
        if spec.type == "numeric":
            continue
        vocabulary, new_tokens = align_vocabulary(
            list(spec.vocabulary), dict(retained_counts.get(spec.name, {})), min_count
        )
        if new_tokens:
            student_schema = student_schema.with_vocabulary(spec.name, vocabulary)
        new_rows[spec.name] = len(new_tokens)

    torch.manual_seed(seed)
    student = build_model(arch, student_schema, dict(model_config or {}))
    report: dict[str, dict[str, Any]] = {}
    if transfer_embeddings:
        teacher_tables = {
            spec.name: teacher.embedding.get_table(spec.name).detach().cpu().numpy()
            for spec in teacher_schema.fields
        }
        student_dims = {spec.name: spec.embedding_dim for spec in student_schema.fields}
        tables, report = transfer_embedding_tables(
            teacher_tables,
            student_dims,
            {name: rows for name, rows in new_rows.items() if rows},
            seed=seed,
            keep_mean=keep_mean,
            new_row_init=new_row_init,
        )
        for name, table in tables.items():
            student.embedding.set_table(name, torch.from_numpy(np.ascontiguousarray(table)))

    seconds = time.perf_counter() - started
    logger.info(
        "student %s built from teacher %s: %d new rows, transfer %s, %.2f s",
        arch,
        teacher.arch,
        sum(new_rows.values()),
        "on" if transfer_embeddings else "off",
        seconds,
    )
    return StudentBuild(model=student, schema=student_schema, report=report, seconds=seconds)
