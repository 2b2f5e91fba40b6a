"""Student vocabulary alignment: teacher rows are kept, ids new in the retained window get rows.

Also builds all student embedding tables from the teacher's (transfer plus new rows).
"""

from __future__ import annotations

import logging
import time
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from crossadapt.errors import DataError, ParamsError, SchemaError
from crossadapt.transfer.projection import transfer_table

logger = logging.getLogger(__name__)

NewRowInit = Literal["mean", "random"]
NEW_ROW_INIT_STRATEGIES: tuple[str, ...] = ("mean", "random")

PAD_INDEX = 0
OOV_INDEX = 1
# Rows before the first vocabulary token in a categorical table: PAD, then OOV.
FIRST_TOKEN_ROW = 2

# Standard deviation of the noise added to "mean" rows and of the "random" rows.
NEW_ROW_STD = 0.01


def align_vocabulary(
    teacher_vocab: Sequence[str], retained_token_counts: Mapping[str, int], min_count: int
) -> tuple[list[str], list[str]]:
    """Return ``(student_vocab, new_tokens)``: the teacher's vocabulary plus the new tokens.

    The student keeps every teacher token at its teacher index, because those rows carry
    what the teacher learned on history that the retention policy deleted. Tokens of the
    retained window that the teacher lacks and that occur at least ``min_count`` times are
    appended, ordered by count descending, then token ascending (the schema's vocabulary
    order). Teacher token ``i`` stays at row ``i + 2`` and new token ``j`` gets row
    ``len(teacher_vocab) + 2 + j``.
    """
    if min_count < 1:
        raise ParamsError(f"features.min_count must be >= 1, got {min_count}")
    known = set(teacher_vocab)
    if len(known) != len(teacher_vocab):
        duplicates = sorted(t for t, n in Counter(teacher_vocab).items() if n > 1)[:5]
        raise SchemaError(
            f"teacher vocabulary has duplicate tokens {duplicates}; refit the teacher schema"
        )

    candidates: list[tuple[int, str]] = []
    for token, count in retained_token_counts.items():
        if count < 0:
            raise DataError(
                f"retained-window count of token {token!r} is negative ({count}); "
                "recount the retained window"
            )
        if token not in known and count >= min_count:
            candidates.append((-count, token))
    new_tokens = [token for _, token in sorted(candidates)]
    return [*teacher_vocab, *new_tokens], new_tokens


def init_new_rows(
    E_s_transferred: np.ndarray,
    n_new: int,
    strategy: NewRowInit = "mean",
    seed: int | Sequence[int] = 0,
) -> np.ndarray:
    """Return ``n_new x d_s`` initial rows for ids the teacher never saw.

    ``"mean"``: the mean of the transferred token rows (rows 2 and up, so PAD and OOV
    excluded) plus Gaussian noise of std 0.01. The teacher mapped these ids to its OOV row,
    which it learned from rare ids only. The mean of the known ids is the population's
    average embedding instead, a neutral start in the same region of the space the student's
    dense layers were fitted on. The noise lets the new rows differ from the first step.
    A table without token rows falls back to its OOV row.
    ``"random"``: Gaussian rows of std 0.01, the usual fresh-embedding initialisation.
    """
    if n_new < 0:
        raise ParamsError(f"number of new rows must be >= 0, got {n_new}")
    if strategy not in NEW_ROW_INIT_STRATEGIES:
        raise ParamsError(
            f"student.new_row_init must be one of {list(NEW_ROW_INIT_STRATEGIES)}, got {strategy!r}"
        )
    table = np.asarray(E_s_transferred)
    rng = np.random.default_rng(seed)
    noise = rng.normal(0.0, NEW_ROW_STD, size=(n_new, table.shape[1]))
    if strategy == "random":
        return noise.astype(table.dtype)

    token_rows = table[FIRST_TOKEN_ROW:]
    if token_rows.shape[0] > 0:
        centre = token_rows.astype(np.float64).mean(axis=0)
    else:
        centre = table[OOV_INDEX].astype(np.float64)
    return (centre + noise).astype(table.dtype)


def transfer_embedding_tables(
    teacher_tables: Mapping[str, np.ndarray],
    student_dims: Mapping[str, int],
    new_rows: Mapping[str, int],
    seed: int,
    keep_mean: bool = False,
    new_row_init: NewRowInit = "mean",
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]]]:
    """Build every student table from the teacher's: transfer, then append new rows.

    Tables of two or more rows follow the schema layout (row 0 PAD, row 1 OOV, tokens from
    row 2). Their projection is fitted on rows 1 and up, since the all-zero PAD row is no
    embedding. The student's PAD row is zero, its OOV row is the teacher's OOV row
    transferred, and ``new_rows[field]`` rows from :func:`init_new_rows` are appended.
    A one-row table (a numeric field with the ``log`` transform) is transferred as is and
    takes no new rows.

    Every field is expanded with the same ``seed``, hence the same ``W`` for tables of equal
    dims. That keeps inner products between embeddings of different fields
    (``<e_i W, e_j W> = <e_i, e_j>``), which FM-style interactions use. PCA reduction fits
    one basis per field, so it keeps cross-field inner products only approximately.

    Returns ``(student_tables, report)``. ``report[field]`` contains the
    :class:`~crossadapt.transfer.projection.TransferStats` fields plus ``new_rows`` and
    ``student_rows``.
    """
    started = time.perf_counter()
    missing = sorted(set(teacher_tables) - set(student_dims))
    if missing:
        raise ParamsError(
            f"no student embedding dim for fields {missing}; set student.embedding_dim "
            "(one int or one entry per field)"
        )
    unknown = sorted(set(new_rows) - set(teacher_tables))
    if unknown:
        raise SchemaError(
            f"new rows given for fields {unknown} that the teacher has no table for; "
            f"teacher fields: {sorted(teacher_tables)}"
        )
    logger.info("embedding transfer of %d fields started", len(teacher_tables))

    student_tables: dict[str, np.ndarray] = {}
    report: dict[str, dict[str, Any]] = {}
    for field, teacher_table in teacher_tables.items():
        n_new = int(new_rows.get(field, 0))
        student_tables[field], stats = _transfer_field(
            field, teacher_table, student_dims[field], n_new, seed, keep_mean, new_row_init
        )
        report[field] = {
            **stats,
            "new_rows": n_new,
            "student_rows": int(student_tables[field].shape[0]),
        }
        logger.info(
            "field %s: %s %d rows, %d -> %d, reconstruction error %.4g, explained variance "
            "%.4f, %d new rows",
            field,
            stats["method"],
            stats["rows"],
            stats["teacher_dim"],
            stats["student_dim"],
            stats["relative_reconstruction_error"],
            stats["explained_variance_ratio"],
            n_new,
        )

    logger.info(
        "embedding transfer of %d fields finished in %.2f s",
        len(teacher_tables),
        time.perf_counter() - started,
    )
    return student_tables, report


def _transfer_field(
    field: str,
    teacher_table: np.ndarray,
    d_s: int,
    n_new: int,
    seed: int,
    keep_mean: bool,
    new_row_init: NewRowInit,
) -> tuple[np.ndarray, dict[str, Any]]:
    table = np.asarray(teacher_table)
    if table.ndim != 2:
        raise SchemaError(f"teacher table of field {field!r} must be 2-D, got shape {table.shape}")
    if n_new < 0:
        raise ParamsError(f"new rows of field {field!r} must be >= 0, got {n_new}")

    if table.shape[0] == 1:
        if n_new:
            raise SchemaError(
                f"field {field!r} has a one-row (numeric) table and cannot take {n_new} new "
                "rows; only categorical fields have vocabularies"
            )
        student_table, stats = transfer_table(table, d_s, seed, keep_mean, name=f"field {field!r}")
        return student_table, stats.to_dict()

    fitted_rows, stats = transfer_table(
        table[OOV_INDEX:], d_s, seed, keep_mean, name=f"field {field!r}"
    )
    pad_row = np.zeros((1, d_s), dtype=fitted_rows.dtype)
    transferred = np.vstack([pad_row, fitted_rows])

    # Each field draws its own noise stream, fixed by the run seed and the field name.
    field_seed = [seed, zlib.crc32(field.encode("utf-8"))]
    appended = init_new_rows(transferred, n_new, new_row_init, field_seed)
    student_table = np.vstack([transferred, appended])
    return student_table, {**stats.to_dict(), "rows": int(table.shape[0])}
