"""Non-iterative projection of one teacher embedding table to the student's dim.

Copy, lossless orthogonal expansion or PCA reduction, in memory or streamed from ``.npy`` files.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from crossadapt.errors import DataError, ParamsError
from crossadapt.storage.atomic import atomic_path

logger = logging.getLogger(__name__)

TransferMethod = Literal["copy", "expand", "reduce"]


@dataclass(frozen=True)
class TransferStats:
    """Summary of one table's transfer, logged and written to the transfer report.

    ``relative_reconstruction_error`` is ||E_t - E_t_hat||_F / ||E_t||_F, where E_t_hat is
    the teacher table rebuilt from the student table (0 for copy and expansion).
    ``explained_variance_ratio`` is the share of the teacher table's total variance that the
    kept directions carry (1 for copy and expansion). ``n_components`` is the number of
    directions the student table carries (``d_t`` for copy and expansion). After a PCA
    reduction the columns past ``n_components`` are zero padding. ``centred`` is False when
    a small table was reduced without centring (see :func:`pca_reduce`).
    """

    method: TransferMethod
    rows: int
    teacher_dim: int
    student_dim: int
    n_components: int
    relative_reconstruction_error: float
    explained_variance_ratio: float
    keep_mean: bool
    centred: bool

    def to_dict(self) -> dict[str, Any]:
        """Return the stats as a JSON-ready dict."""
        return asdict(self)


def expansion_matrix(d_t: int, d_s: int, seed: int) -> np.ndarray:
    """Return a ``d_t x d_s`` float64 matrix ``W`` with orthonormal rows (``W W^T = I``).

    ``W`` is the first ``d_t`` rows of the orthogonal factor ``Q`` of the QR decomposition
    of a ``d_s x d_s`` standard Gaussian matrix drawn with ``seed`` (CrossAdapt, Wu et al.
    2026, arXiv 2602.01775, embedding expansion). QR is unique only up to the signs of
    ``diag(R)``, so the columns of ``Q`` are multiplied by ``sign(diag(R))``. That makes
    ``W`` a function of ``seed`` alone, whatever the LAPACK build, and makes ``Q``
    Haar-distributed.
    """
    if d_t < 1 or d_s < d_t:
        raise ParamsError(
            f"expansion needs 1 <= teacher dim <= student dim, got teacher dim {d_t} and "
            f"student dim {d_s}; use pca_reduce to shrink a table"
        )
    gaussian = np.random.default_rng(seed).standard_normal((d_s, d_s))
    q, r = np.linalg.qr(gaussian)
    signs = np.sign(np.diag(r))
    signs[signs == 0] = 1.0
    q = q * signs  # flips column j by sign(R_jj)
    return q[:d_t, :]


def expand(E_t: np.ndarray, d_s: int, seed: int) -> np.ndarray:
    """Return ``E_s = E_t W`` (``V x d_s``), with ``W`` from :func:`expansion_matrix`.

    Lossless: ``E_s E_s^T = E_t E_t^T`` (every inner product and distance between rows is
    kept) and ``E_s W^T = E_t``. The product runs in float64; the result has ``E_t``'s
    dtype.
    """
    table = _as_float_table(E_t, "embedding table")
    weights = expansion_matrix(table.shape[1], d_s, seed)
    return (table.astype(np.float64) @ weights).astype(table.dtype)


def pca_reduce(
    E_t: np.ndarray, d_s: int, keep_mean: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, TransferStats]:
    """Reduce a ``V x d_t`` table to ``d_s < d_t`` columns by exact PCA.

    Returns ``(E_s, P, mean, stats)``. ``P`` (``d_t x d_s``, orthonormal columns) contains the
    top ``d_s`` eigenvectors of the population covariance ``C = (E - mean)^T (E - mean) / V``
    (``numpy.linalg.eigh``), each column's sign chosen so that its largest-magnitude
    component is positive. ``E_s = (E_t - mean) P``, plus ``mean P`` when ``keep_mean``.
    The CrossAdapt reference code (github.com/wuyucheng2002/CrossAdapt) drops the mean.

    A table of ``V <= d_s`` rows spans at most ``V`` directions, so centred PCA would waste
    one of them on the mean. Such a table is projected uncentred onto the top right singular
    vectors of ``E_t``, which is lossless (``E_s E_s^T = E_t E_t^T``). ``mean`` is then zero
    and ``stats.centred`` is False. In both cases columns beyond the meaningful components
    (at most ``V - 1`` centred, ``rank(E_t)`` uncentred) are zero.
    """
    started = time.perf_counter()
    table = _as_float_table(E_t, "embedding table")
    n_rows, d_t = table.shape
    _check_reduction_dims(d_t, d_s)

    values = table.astype(np.float64)
    if n_rows <= d_s:
        mean = np.zeros(d_t)
        gram = values.T @ values / n_rows
        directions, eigenvalues, n_components = _principal_directions(gram, d_s, n_rows)
    else:
        mean = values.mean(axis=0)
        centred_values = values - mean
        covariance = centred_values.T @ centred_values / n_rows
        directions, eigenvalues, n_components = _principal_directions(covariance, d_s, n_rows - 1)

    coordinates = (values - mean) @ directions
    reconstruction = coordinates @ directions.T + mean
    total_variance = float(np.sum(eigenvalues))
    kept_variance = float(np.sum(eigenvalues[-n_components:])) if n_components else 0.0
    stats = TransferStats(
        method="reduce",
        rows=n_rows,
        teacher_dim=d_t,
        student_dim=d_s,
        n_components=n_components,
        relative_reconstruction_error=_relative_error(
            float(np.sum((values - reconstruction) ** 2)), float(np.sum(values**2))
        ),
        explained_variance_ratio=kept_variance / total_variance if total_variance > 0 else 1.0,
        keep_mean=keep_mean,
        centred=n_rows > d_s,
    )

    if keep_mean:
        coordinates = coordinates + mean @ directions
    logger.debug("pca_reduce %d x %d -> %d in %.3f s", n_rows, d_t, d_s, _since(started))
    return coordinates.astype(table.dtype), directions, mean, stats


def transfer_table(
    E_t: np.ndarray,
    d_s: int,
    seed: int,
    keep_mean: bool = False,
    *,
    name: str = "embedding table",
) -> tuple[np.ndarray, TransferStats]:
    """Return the student table for ``E_t`` and its stats: copy, expand or PCA-reduce.

    ``d_s == d_t`` copies, ``d_s > d_t`` calls :func:`expand` (lossless), ``d_s < d_t``
    calls :func:`pca_reduce`. ``name`` (a field name) appears in error messages.
    """
    table = _as_float_table(E_t, name)
    n_rows, d_t = table.shape
    if d_s < 1:
        raise ParamsError(f"student embedding dim of {name} must be >= 1, got {d_s}")

    if d_s == d_t:
        student_table = table.copy()
        stats = _lossless_stats("copy", n_rows, d_t, d_s)
    elif d_s > d_t:
        student_table = expand(table, d_s, seed)
        stats = _lossless_stats("expand", n_rows, d_t, d_s)
    else:
        student_table, _, _, stats = pca_reduce(table, d_s, keep_mean=keep_mean)
    return student_table, stats


def streaming_covariance(
    table: np.ndarray | NpyRows, chunk_rows: int, *, name: str = "embedding table"
) -> tuple[np.ndarray, np.ndarray, int]:
    """Return ``(mean, covariance, n)`` of the rows of ``table`` in one pass over row chunks.

    ``table`` may be an array, a read-only memmap or an :class:`NpyRows` reader of a file
    larger than memory. Each chunk's mean (summed in float64) and centred scatter matrix
    ``M2_b`` (in the table's precision, at least float32: see :func:`compute_dtype`) are
    merged in float64 with the pairwise update of Chan, Golub and LeVeque (1979):
    ``n = n_a + n_b``, ``delta = mean_b - mean_a``, ``mean = mean_a + delta n_b / n``,
    ``M2 = M2_a + M2_b + delta delta^T n_a n_b / n``. Unlike accumulating ``sum(x)`` and
    ``X^T X``, this does not lose precision when the mean is large relative to the spread.
    ``covariance = M2 / n`` (population covariance). Memory: one chunk plus ``O(d^2)``.
    ``name`` appears in error messages.
    """
    if table.ndim != 2:
        raise DataError(f"{name} must be a 2-D array, got shape {table.shape}")
    if chunk_rows < 1:
        raise ParamsError(f"chunk_rows must be >= 1, got {chunk_rows}")
    n_rows, dim = table.shape
    if n_rows == 0:
        raise DataError(f"{name} has no rows; a covariance needs at least one row")

    count = 0
    mean = np.zeros(dim)
    scatter = np.zeros((dim, dim))
    work_dtype = compute_dtype(table.dtype)
    # An NpyRows chunk is this pass's own read buffer, which the next chunk overwrites, so
    # it is centred in place. An array chunk is copied first: `table` must stay intact.
    owned = isinstance(table, NpyRows) and table.dtype == work_dtype
    for start, rows in _row_chunks(table, chunk_rows):
        _check_finite_chunk(rows, start, name)
        chunk_count = rows.shape[0]
        chunk_mean = rows.mean(axis=0, dtype=np.float64)
        chunk = rows if owned else np.array(rows, dtype=work_dtype)
        chunk -= chunk_mean.astype(work_dtype)
        chunk_scatter = (chunk.T @ chunk).astype(np.float64)

        total = count + chunk_count
        delta = chunk_mean - mean
        mean = mean + delta * (chunk_count / total)
        scatter += chunk_scatter + np.outer(delta, delta) * (count * chunk_count / total)
        count = total
    return mean, scatter / count, count


def chunk_rows_for_budget(memory_budget_bytes: int, d_in: int, d_out: int) -> int:
    """Return the rows per chunk that keep a streaming pass within ``memory_budget_bytes``.

    Per row a pass keeps the read buffer of the input chunk, its copy in the compute
    precision, one more temporary of the input's size (BLAS may copy the transposed chunk
    for ``chunk.T @ chunk``), the output and its cast copy, each at most 8 bytes a value:
    at most ``8 * (3 d_in + 2 d_out)`` bytes. The fixed part is the float64 covariance,
    eigenvectors and projection matrix: ``8 * (3 d_in^2 + d_in d_out)`` bytes.
    """
    per_row = 8 * (3 * d_in + 2 * d_out)
    fixed = 8 * (3 * d_in * d_in + d_in * d_out)
    chunk_rows = (memory_budget_bytes - fixed) // per_row
    if chunk_rows < 1:
        raise ParamsError(
            f"memory budget of {memory_budget_bytes} bytes is too small for a {d_in} -> {d_out} "
            f"projection: it needs at least {fixed + per_row} bytes; raise memory_budget_bytes"
        )
    return int(chunk_rows)


def streaming_pca_reduce(
    src_npy_path: str | os.PathLike[str],
    dst_npy_path: str | os.PathLike[str],
    d_s: int,
    memory_budget_bytes: int,
    keep_mean: bool = False,
) -> TransferStats:
    """PCA-reduce the table in ``src_npy_path`` to ``d_s`` columns, written to ``dst_npy_path``.

    Same result as :func:`pca_reduce` (within float rounding) for tables of any size: the
    covariance comes from one streaming pass (:func:`streaming_covariance`), the projection
    from a second pass. Peak memory is ``O(chunk_rows x d + d^2)``, independent of the row
    count, with ``chunk_rows`` from :func:`chunk_rows_for_budget`. The output has the
    input's dtype and is written to a temporary file that is renamed over ``dst_npy_path``.
    The relative reconstruction error comes from the eigenvalues:
    ``sqrt(sum of dropped eigenvalues / (trace(C) + ||mean||^2))``.
    """
    started = time.perf_counter()
    source = _open_npy(src_npy_path)
    n_rows, d_t = source.shape
    _check_reduction_dims(d_t, d_s)
    chunk_rows = chunk_rows_for_budget(memory_budget_bytes, d_t, d_s)
    logger.info(
        "streaming PCA %s: %d x %d -> %d, %d rows per chunk",
        src_npy_path,
        n_rows,
        d_t,
        d_s,
        chunk_rows,
    )

    mean, covariance, _ = streaming_covariance(source, chunk_rows, name=str(src_npy_path))
    if n_rows <= d_s:
        # A table this small fits in the budget's d^2 term; see pca_reduce for the reason.
        small = np.load(src_npy_path) if isinstance(source, NpyRows) else np.asarray(source)
        _, directions, mean, stats = pca_reduce(small, d_s, keep_mean=keep_mean)
        offset = np.zeros(d_s)
    else:
        directions, eigenvalues, n_components = _principal_directions(covariance, d_s, n_rows - 1)
        total_variance = float(np.sum(eigenvalues))
        kept_variance = float(np.sum(eigenvalues[-n_components:])) if n_components else 0.0
        stats = TransferStats(
            method="reduce",
            rows=n_rows,
            teacher_dim=d_t,
            student_dim=d_s,
            n_components=n_components,
            relative_reconstruction_error=_relative_error(
                max(total_variance - kept_variance, 0.0),
                total_variance + float(mean @ mean),
            ),
            explained_variance_ratio=(
                kept_variance / total_variance if total_variance > 0 else 1.0
            ),
            keep_mean=keep_mean,
            centred=True,
        )
        offset = -mean @ directions if not keep_mean else np.zeros(d_s)

    _write_projected(
        source,
        dst_npy_path,
        directions,
        offset,
        chunk_rows,
        str(src_npy_path),
        check_finite=False,  # streaming_covariance has checked every row
    )
    _log_stats(str(src_npy_path), stats, started)
    return stats


def streaming_expand(
    src_npy_path: str | os.PathLike[str],
    dst_npy_path: str | os.PathLike[str],
    d_s: int,
    seed: int,
    memory_budget_bytes: int,
) -> TransferStats:
    """Expand the table in ``src_npy_path`` to ``d_s`` columns (``E_t W``), chunk by chunk.

    Same result as :func:`expand`; peak memory ``O(chunk_rows x d_s + d_s^2)``. The output
    is written to a temporary file that is renamed over ``dst_npy_path``.
    """
    started = time.perf_counter()
    source = _open_npy(src_npy_path)
    n_rows, d_t = source.shape
    weights = expansion_matrix(d_t, d_s, seed)
    chunk_rows = chunk_rows_for_budget(memory_budget_bytes, d_t, d_s)
    logger.info(
        "streaming expansion %s: %d x %d -> %d, %d rows per chunk",
        src_npy_path,
        n_rows,
        d_t,
        d_s,
        chunk_rows,
    )

    _write_projected(source, dst_npy_path, weights, np.zeros(d_s), chunk_rows, str(src_npy_path))
    stats = _lossless_stats("expand", n_rows, d_t, d_s)
    _log_stats(str(src_npy_path), stats, started)
    return stats


def streaming_transfer_table(
    src_npy_path: str | os.PathLike[str],
    dst_npy_path: str | os.PathLike[str],
    d_s: int,
    seed: int,
    memory_budget_bytes: int,
    keep_mean: bool = False,
) -> TransferStats:
    """Stream-transfer one ``.npy`` table: copy, expand or PCA-reduce, as :func:`transfer_table`."""
    source = _open_npy(src_npy_path)
    d_t = source.shape[1]
    if d_s > d_t:
        return streaming_expand(src_npy_path, dst_npy_path, d_s, seed, memory_budget_bytes)
    if d_s < d_t:
        return streaming_pca_reduce(
            src_npy_path, dst_npy_path, d_s, memory_budget_bytes, keep_mean=keep_mean
        )

    started = time.perf_counter()
    chunk_rows = chunk_rows_for_budget(memory_budget_bytes, d_t, d_s)
    _write_projected(
        source, dst_npy_path, np.eye(d_t), np.zeros(d_s), chunk_rows, str(src_npy_path)
    )
    stats = _lossless_stats("copy", source.shape[0], d_t, d_s)
    _log_stats(str(src_npy_path), stats, started)
    return stats


def _principal_directions(
    matrix: np.ndarray, d_s: int, max_components: int
) -> tuple[np.ndarray, np.ndarray, int]:
    # Top-d_s eigenvectors of a symmetric PSD matrix, as columns, largest eigenvalue first.
    # Directions past max_components (the rank bound of the data) are set to zero because
    # eigh returns an arbitrary basis of a null space.
    eigenvalues, eigenvectors = np.linalg.eigh(matrix)
    eigenvalues = np.clip(eigenvalues, 0.0, None)  # ascending; round-off can make zeros < 0
    n_components = min(d_s, max(max_components, 0))
    scale = eigenvalues[-1] if eigenvalues.size else 0.0
    n_components = min(n_components, int(np.sum(eigenvalues > scale * 1e-12)))

    directions = np.zeros((matrix.shape[0], d_s))
    if n_components:
        top = eigenvectors[:, ::-1][:, :n_components]
        largest = np.argmax(np.abs(top), axis=0)
        signs = np.sign(top[largest, np.arange(n_components)])
        directions[:, :n_components] = top * signs
    return directions, eigenvalues, n_components


def _write_projected(
    source: np.ndarray | NpyRows,
    dst_npy_path: str | os.PathLike[str],
    matrix: np.ndarray,
    offset: np.ndarray,
    chunk_rows: int,
    source_name: str,
    check_finite: bool = True,
) -> None:
    # Writes source @ matrix + offset chunk by chunk into a temp .npy renamed over dst.
    # check_finite=False when an earlier pass over the same file has checked every row.
    # Plain write() calls rather than a memmap: the output's pages then stay in the page
    # cache instead of the process's resident memory.
    n_rows = source.shape[0]
    header = {
        "descr": np.lib.format.dtype_to_descr(source.dtype),
        "fortran_order": False,
        "shape": (n_rows, matrix.shape[1]),
    }
    work_dtype = compute_dtype(source.dtype)
    work_matrix = matrix.astype(work_dtype)
    work_offset = offset.astype(work_dtype)
    with atomic_path(dst_npy_path) as tmp, open(tmp, "wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for start, rows in _row_chunks(source, chunk_rows):
            if check_finite:
                _check_finite_chunk(rows, start, source_name)
            projected = np.asarray(rows, dtype=work_dtype) @ work_matrix
            projected += work_offset
            handle.write(np.ascontiguousarray(projected, dtype=source.dtype).data)


def compute_dtype(table_dtype: np.dtype) -> np.dtype:
    """Return the precision of a streaming pass over a table of ``table_dtype``.

    float32 for float16 and float32 tables, float64 for float64 ones: the arithmetic keeps
    the table's own precision. The covariance and the projection matrix are still solved
    in float64. In float32 a pass moves half the bytes of a float64 one and runs
    single-precision BLAS products.
    """
    return np.result_type(table_dtype, np.float32)


class NpyRows:
    """Rows of a C-order ``.npy`` file, read in chunks with plain ``read()`` calls.

    Slicing a memmap maps the file's pages into the process, so the resident memory of a
    pass grows with the file. ``read()`` into one reused buffer keeps it at one chunk.
    ``shape``, ``dtype`` and ``ndim`` are those of the stored array.
    """

    def __init__(self, path: Path, shape: tuple[int, ...], dtype: np.dtype, offset: int) -> None:
        self.path = path
        self.shape = shape
        self.dtype = dtype
        self.ndim = len(shape)
        self._offset = offset

    def chunks(self, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(first_row, rows)``; ``rows`` is a view of a buffer reused by the next chunk."""
        n_rows, dim = self.shape
        buffer = np.empty((min(chunk_rows, n_rows), dim), dtype=self.dtype)
        with open(self.path, "rb", buffering=0) as handle:
            handle.seek(self._offset)
            for start in range(0, n_rows, chunk_rows):
                rows = buffer[: min(chunk_rows, n_rows - start)]
                view = memoryview(rows).cast("B")
                filled = 0
                while filled < len(view):
                    read = handle.readinto(view[filled:])
                    if not read:
                        raise DataError(
                            f"embedding table {self.path} ends at row {start} of {n_rows}: the "
                            "file is truncated; write it again with numpy.save"
                        )
                    filled += read
                yield start, rows


def _row_chunks(table: np.ndarray | NpyRows, chunk_rows: int) -> Iterator[tuple[int, np.ndarray]]:
    if isinstance(table, NpyRows):
        yield from table.chunks(chunk_rows)
        return
    for start in range(0, table.shape[0], chunk_rows):
        yield start, table[start : start + chunk_rows]


def _open_npy(path: str | os.PathLike[str]) -> np.ndarray | NpyRows:
    file_path = Path(path)
    if not file_path.is_file():
        raise DataError(f"embedding table {file_path} not found; write it with numpy.save first")
    try:
        table = np.load(file_path, mmap_mode="r")
    except ValueError as error:
        raise DataError(f"embedding table {file_path} is not a valid .npy file: {error}") from error
    if isinstance(table, np.memmap) and table.flags.c_contiguous and table.dtype.isnative:
        # The memmap only served to check the header and the file size; passes read the
        # rows with read() (see NpyRows).
        table = NpyRows(file_path, table.shape, table.dtype, int(table.offset))
    if table.ndim != 2 or not np.issubdtype(table.dtype, np.floating):
        raise DataError(
            f"embedding table {file_path} must be a 2-D float array, got shape {table.shape} "
            f"and dtype {table.dtype}"
        )
    if table.shape[0] == 0 or table.shape[1] == 0:
        raise DataError(f"embedding table {file_path} is empty (shape {table.shape})")
    return table


def _as_float_table(table: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(table)
    if array.ndim != 2 or not np.issubdtype(array.dtype, np.floating):
        raise DataError(
            f"{name} must be a 2-D float array, got shape {array.shape} and dtype {array.dtype}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise DataError(f"{name} is empty (shape {array.shape}); the teacher table is required")
    if not np.all(np.isfinite(array)):
        bad_row = int(np.flatnonzero(~np.all(np.isfinite(array), axis=1))[0])
        raise DataError(
            f"{name} contains NaN or infinite values (first at row {bad_row}); "
            "the teacher checkpoint is corrupt or diverged, retrain or restore it"
        )
    return array


def _check_finite_chunk(chunk: np.ndarray, start: int, name: str) -> None:
    if not np.all(np.isfinite(chunk)):
        bad_row = start + int(np.flatnonzero(~np.all(np.isfinite(chunk), axis=1))[0])
        raise DataError(
            f"{name}: NaN or infinite values at row {bad_row}; "
            "the teacher table is corrupt, restore it from its checkpoint"
        )


def _check_reduction_dims(d_t: int, d_s: int) -> None:
    if not 1 <= d_s < d_t:
        raise ParamsError(
            f"PCA reduction needs 1 <= student dim < teacher dim, got student dim {d_s} and "
            f"teacher dim {d_t}; use expand or transfer_table for other dims"
        )


def _lossless_stats(method: TransferMethod, n_rows: int, d_t: int, d_s: int) -> TransferStats:
    return TransferStats(
        method=method,
        rows=n_rows,
        teacher_dim=d_t,
        student_dim=d_s,
        n_components=d_t,
        relative_reconstruction_error=0.0,
        explained_variance_ratio=1.0,
        keep_mean=False,
        centred=False,
    )


def _relative_error(squared_error: float, squared_norm: float) -> float:
    return float(np.sqrt(squared_error / squared_norm)) if squared_norm > 0 else 0.0


def _log_stats(name: str, stats: TransferStats, started: float) -> None:
    logger.info(
        "transfer %s: %s %d rows, %d -> %d, %d components, reconstruction error %.4g, "
        "explained variance %.4f, %.2f s",
        name,
        stats.method,
        stats.rows,
        stats.teacher_dim,
        stats.student_dim,
        stats.n_components,
        stats.relative_reconstruction_error,
        stats.explained_variance_ratio,
        _since(started),
    )


def _since(started: float) -> float:
    return time.perf_counter() - started
