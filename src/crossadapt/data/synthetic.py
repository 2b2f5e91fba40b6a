"""Seeded generator of Criteo-shaped click streams with Zipf ids, factor interactions and drift.

Each day is a pure function of ``(config, day_index)``; memory is O(rows_per_day) plus a
fixed-size factor table per field, whatever the vocabulary sizes.
"""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from crossadapt.config.days import SECONDS_PER_DAY, check_day, day_start_timestamp, shift_day

logger = logging.getLogger(__name__)

MAX_VOCAB_SIZE = 1 << 40
# Ids new since day 0 live above every vocabulary id, so they never collide with one.
NEW_ID_BASE = 1 << 40
# Ids are shown as 12 hex digits of a per-field bijection of their 48 low bits.
ID_HEX_DIGITS = 12
_ID_MASK = (1 << 48) - 1
_ODD_MULTIPLIER = 0x9E3779B97F4B  # odd, so multiplying by it mod 2**48 is a bijection
_CALIBRATION_ROWS = 20_000
# Popularity ranks whose id strings and factor rows are tabulated once per day and field.
HEAD_RANKS = 1 << 16
_HEX_TABLE = np.array(
    [[ord(c) for c in f"{value:04x}"] for value in range(1 << 16)], dtype=np.uint8
).view(np.uint32)[:, 0]


class SyntheticConfig(BaseModel):
    """Settings of the synthetic click stream (``dataset.synthetic`` in params.yaml).

    Click model: the logit of a row with ``F`` categorical and ``M`` numeric fields is
    ``b + a_1 * sum_f w_f(x_f) + a_2 * sum_{f<g} <v_f(x_f), v_g(x_g)> + a_3 * sum_j beta_j z_j``.
    Weights ``w``, factors ``v`` (``k = latent_dim`` entries) and ``beta`` are standard
    normal, and ``z_j ~ N(0, 1)`` is the latent value behind numeric field ``j``.
    The scales ``a_1 = linear_strength / sqrt(F)``,
    ``a_2 = interaction_strength / sqrt(k F (F - 1) / 2)`` and
    ``a_3 = numeric_strength / sqrt(M)`` give each term the variance ``strength**2``.
    The bias ``b`` is calibrated so the mean click rate of the first day (and of the
    drift day) is ``base_ctr``. The pairwise term is what a factorization machine or a
    cross network models directly and a plain MLP has to approximate.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_days: int = Field(default=30, ge=1)
    rows_per_day: int = Field(default=100_000, ge=1)
    n_categorical: int = Field(default=26, ge=0)
    n_numeric: int = Field(default=13, ge=0)
    # One size for every categorical field, or one per field (c0, c1, ...).
    vocab_sizes: int | list[int] = 100_000
    zipf_exponent: float = Field(default=1.1, gt=0.0)
    latent_dim: int = Field(default=4, ge=1, le=64)
    interaction_strength: float = Field(default=1.0, ge=0.0)
    linear_strength: float = Field(default=1.0, ge=0.0)
    numeric_strength: float = Field(default=0.5, ge=0.0)
    base_ctr: float = Field(default=0.2, gt=0.0, lt=1.0)
    # Expected share of popularity ranks whose id moves to another existing id, per day.
    daily_popularity_shift: float = Field(default=0.02, ge=0.0, le=1.0)
    # Expected share of popularity ranks taken over by a never-seen id, per day.
    new_id_share: float = Field(default=0.01, ge=0.0, le=1.0)
    # From this day index on, a share drift_strength of ranks get a re-drawn id and the
    # click weights rotate towards fresh ones by the angle drift_strength * pi / 2.
    drift_day: int | None = Field(default=None, ge=1)
    drift_strength: float = Field(default=0.5, ge=0.0, le=1.0)
    missing_share: float = Field(default=0.0, ge=0.0, lt=1.0)
    # Rows of each field's factor table; ids beyond it share rows (id mod rows).
    factor_table_rows: int = Field(default=1 << 14, ge=1, le=1 << 22)
    start_date: str = "2014-01-01"
    seed: int = Field(default=0, ge=0, lt=1 << 63)

    @field_validator("start_date", mode="before")
    @classmethod
    def _check_start_date(cls, value: Any) -> str:
        return check_day(value)

    @model_validator(mode="after")
    def _consistent(self) -> SyntheticConfig:
        if self.n_categorical + self.n_numeric == 0:
            raise ValueError("n_categorical and n_numeric are both 0: ask for at least one field")
        sizes = self.field_vocab_sizes()
        if len(sizes) != self.n_categorical:
            raise ValueError(
                f"vocab_sizes lists {len(sizes)} sizes for {self.n_categorical} categorical "
                "fields: give one size per field or a single int"
            )
        if any(size < 1 or size > MAX_VOCAB_SIZE for size in sizes):
            raise ValueError(f"vocab_sizes {sizes} must each be in [1, 2**40]")
        if self.drift_day is not None and self.drift_day >= self.n_days:
            raise ValueError(
                f"drift_day {self.drift_day} is not before n_days {self.n_days}: "
                "the drift would never happen"
            )
        return self

    def field_vocab_sizes(self) -> list[int]:
        """Vocabulary size of each categorical field."""
        if isinstance(self.vocab_sizes, int):
            return [self.vocab_sizes] * self.n_categorical
        return list(self.vocab_sizes)

    def day(self, day_index: int) -> str:
        """Calendar day (``YYYY-MM-DD``) of day ``day_index``."""
        return shift_day(self.start_date, day_index)


def categorical_columns(config: SyntheticConfig) -> list[str]:
    return [f"c{i}" for i in range(config.n_categorical)]


def numeric_columns(config: SyntheticConfig) -> list[str]:
    return [f"n{j}" for j in range(config.n_numeric)]


def synthetic_field_defs(config: SyntheticConfig) -> list[dict[str, Any]]:
    """Return field definitions for ``fit_schema``.

    c0 is a user field, c1 an item field and the other categorical fields are context.
    Numeric fields use the log transform with fill value 0.
    """
    sources = ["user", "item"]
    defs: list[dict[str, Any]] = [
        {"name": name, "type": "categorical", "source": sources[i] if i < 2 else "context"}
        for i, name in enumerate(categorical_columns(config))
    ]
    defs += [
        {
            "name": name,
            "type": "numeric",
            "source": "context",
            "transform": "log",
            "fill_value": 0.0,
        }
        for name in numeric_columns(config)
    ]
    return defs


def zipf_head_share(vocab_size: int, exponent: float, head: int) -> float:
    """Expected share of draws with rank ``< head`` under the generator's rank law.

    Ranks are ``floor(X) - 1`` with ``X`` the power law of density ``x**-s`` on
    ``[1, V + 1)`` (a continuous Zipf law), so
    ``P(rank < k) = ((k + 1)**(1 - s) - 1) / ((V + 1)**(1 - s) - 1)`` (``log`` ratio for s = 1).
    """
    k = min(head, vocab_size)
    if math.isclose(exponent, 1.0):
        return math.log(k + 1) / math.log(vocab_size + 1)
    power = 1.0 - exponent
    return ((k + 1) ** power - 1.0) / ((vocab_size + 1) ** power - 1.0)


def iter_days(config: SyntheticConfig) -> Iterator[tuple[str, pd.DataFrame]]:
    """Yield ``(day, frame)`` for every day of the stream, in order."""
    for day_index in range(config.n_days):
        yield config.day(day_index), generate_day(config, day_index)


def generate_day(config: SyntheticConfig, day_index: int) -> pd.DataFrame:
    """Generate the partition of day ``day_index``: deterministic per ``(config, day)``.

    Columns: ``timestamp`` (int64, sorted, inside the UTC day), ``label`` (int8),
    ``c0..`` (strings backed by Arrow: 12 hex digits, null when missing) and ``n0..``
    (float64 counts ``floor(exp(mu_j + sigma_j z_j)) - 1`` clipped at 0, NaN when missing).
    """
    if not 0 <= day_index < config.n_days:
        raise ValueError(f"day_index {day_index} is outside [0, {config.n_days})")
    started = time.perf_counter()
    rng = np.random.default_rng([config.seed, day_index, 0x5EED])
    rows = config.rows_per_day
    columns, logits = _draw_features(config, day_index, rows, rng)

    bias = _calibrated_bias(config, _is_drifted(config, day_index))
    probability = 1.0 / (1.0 + np.exp(-(logits + bias)))
    label = (rng.random(rows) < probability).astype(np.int8)

    seconds = rng.integers(0, SECONDS_PER_DAY, size=rows)
    counts = np.bincount(seconds, minlength=SECONDS_PER_DAY)
    day_start = day_start_timestamp(config.day(day_index))
    timestamp = day_start + np.repeat(np.arange(SECONDS_PER_DAY, dtype=np.int64), counts)

    frame = pd.DataFrame({"timestamp": timestamp, "label": label, **columns}, copy=False)
    logger.info(
        "synthetic day %s (%d) generated: %d rows, %.4f positive rate, %.2f s",
        config.day(day_index),
        day_index,
        rows,
        float(label.mean()) if rows else 0.0,
        time.perf_counter() - started,
    )
    return frame


def _is_drifted(config: SyntheticConfig, day_index: int) -> bool:
    return config.drift_day is not None and day_index >= config.drift_day


def _draw_features(
    config: SyntheticConfig, day_index: int, rows: int, rng: np.random.Generator
) -> tuple[dict[str, Any], np.ndarray]:
    """Draw every feature column and the logit of each row without its bias."""
    drifted = _is_drifted(config, day_index)
    logits = np.zeros(rows, dtype=np.float64)
    columns: dict[str, Any] = {}

    n_fields = config.n_categorical
    dim = config.latent_dim
    # Per row: sum_f v_f (dim columns), then sum_f w_f, then sum_f |v_f|^2.
    totals = np.zeros((rows, dim + 2), dtype=np.float32)
    gathered = np.empty_like(totals)
    for field, vocab_size in enumerate(config.field_vocab_sizes()):
        ranks = _draw_ranks(rng, rows, vocab_size, config.zipf_exponent)
        present = _present_mask(rng, rows, config.missing_share)
        words, table_rows = _encode_ranks(config, field, vocab_size, ranks, day_index)
        if present is not None:
            table_rows[~present] = _factor_table(config, field, drifted).shape[0] - 1

        np.take(_factor_table(config, field, drifted), table_rows, axis=0, out=gathered)
        totals += gathered
        columns[f"c{field}"] = _strings_from_words(words, present)

    if n_fields:
        factor_sum = totals[:, :dim]
        # sum_{f<g} <v_f, v_g> = (|sum_f v_f|^2 - sum_f |v_f|^2) / 2 (Rendle 2010, FM).
        pairwise = 0.5 * (np.einsum("ij,ij->i", factor_sum, factor_sum) - totals[:, dim + 1])
        logits += config.linear_strength / math.sqrt(n_fields) * totals[:, dim]
        if n_fields > 1:
            pairs = n_fields * (n_fields - 1) / 2
            scale = config.interaction_strength / math.sqrt(pairs * dim)
            logits += scale * pairwise

    if config.n_numeric:
        mu, sigma, beta = _numeric_parameters(config, drifted)
        latent = rng.standard_normal((config.n_numeric, rows), dtype=np.float32)
        scale = config.numeric_strength / math.sqrt(config.n_numeric)
        logits += scale * (beta.astype(np.float32) @ latent)
        for j in range(config.n_numeric):
            counts = np.exp(np.float32(mu[j]) + np.float32(sigma[j]) * latent[j])
            np.floor(counts, out=counts)
            counts -= np.float32(1.0)
            np.maximum(counts, np.float32(0.0), out=counts)
            column = counts.astype(np.float64)
            present = _present_mask(rng, rows, config.missing_share)
            if present is not None:
                column[~present] = np.nan
            columns[f"n{j}"] = column
    return columns, logits


def _draw_ranks(
    rng: np.random.Generator, rows: int, vocab_size: int, exponent: float
) -> np.ndarray:
    """Popularity ranks in ``[0, V)``: ``floor(X) - 1`` with ``X`` a power law on ``[1, V+1)``.

    Inverse CDF: ``X = (1 + u ((V+1)^(1-s) - 1))^(1/(1-s))``, or ``(V+1)^u`` for s = 1.
    """
    uniform = rng.random(rows)
    if math.isclose(exponent, 1.0):
        x = np.exp(uniform * math.log(vocab_size + 1.0))
    else:
        power = 1.0 - exponent
        x = np.power(1.0 + uniform * ((vocab_size + 1.0) ** power - 1.0), 1.0 / power)
    ranks = x.astype(np.uint64)  # x >= 1, so the floor is >= 1
    ranks -= np.uint64(1)
    return np.minimum(ranks, np.uint64(vocab_size - 1), out=ranks)


def _present_mask(rng: np.random.Generator, rows: int, missing_share: float) -> np.ndarray | None:
    if missing_share <= 0.0:
        return None
    return rng.random(rows) >= missing_share


def _mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele, Lea and Flood 2014): a bijective 64-bit hash."""
    x = values.astype(np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


def _unit_interval(hashes: np.ndarray) -> np.ndarray:
    return (hashes >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def _field_key(seed: int, field: int) -> np.uint64:
    return _mix64(np.array([(seed * 1_000_003 + field + 1) & ((1 << 64) - 1)], np.uint64))[0]


def _rank_owners(
    config: SyntheticConfig, field: int, vocab_size: int, ranks: np.ndarray, day_index: int
) -> np.ndarray:
    """Return the id at each popularity rank on ``day_index``.

    Rank ``r`` belongs to id ``r`` on day 0. It changes owner at the rate
    ``lambda = daily_popularity_shift + new_id_share`` per day: its epoch is
    ``floor(day * lambda + phase_r)`` with a hashed phase in ``[0, 1)``. At each new epoch
    the owner is a never-seen id with probability ``new_id_share / lambda``, else a
    hashed id of the vocabulary. From ``drift_day`` on, a hashed share ``drift_strength``
    of ranks also get a re-drawn owner.
    """
    key = _field_key(config.seed, field)
    rate = config.daily_popularity_shift + config.new_id_share
    phase = _unit_interval(_mix64(ranks ^ key))
    epoch = np.floor(day_index * rate + phase).astype(np.uint64)

    if _is_drifted(config, day_index):
        drift_key = np.uint64((int(key) * 3) & ((1 << 64) - 1))
        drift_hash = _mix64(ranks ^ drift_key)
        redrawn = _unit_interval(drift_hash) < config.drift_strength
        epoch = np.where(redrawn, epoch | np.uint64(1 << 40), epoch)

    owners = ranks.copy()
    moved = epoch > 0
    if not moved.any():
        return owners
    owner_hash = _mix64(_mix64(ranks[moved] ^ key) + epoch[moved] * np.uint64(0x9E3779B97F4A7C15))
    new_share = config.new_id_share / rate if rate > 0 else 0.0
    is_new = (_unit_interval(owner_hash) < new_share) & (epoch[moved] < np.uint64(1 << 40))
    existing = (owner_hash >> np.uint64(8)) % np.uint64(vocab_size)
    fresh = np.uint64(NEW_ID_BASE) + (owner_hash >> np.uint64(24))
    owners[moved] = np.where(is_new, fresh, existing)
    return owners


def _encode_ranks(
    config: SyntheticConfig, field: int, vocab_size: int, ranks: np.ndarray, day_index: int
) -> tuple[np.ndarray, np.ndarray]:
    """Return the id string bytes ``(n, 3) uint32`` and the factor table row of each rank.

    Both are pure functions of the rank, so for large days the ranks below
    ``HEAD_RANKS`` (most draws under a Zipf law) are looked up in a table computed once,
    and only the tail ranks are hashed row by row.
    """
    head = min(vocab_size, HEAD_RANKS)
    if len(ranks) < 4 * head:
        return _encode_ids(config, field, _rank_owners(config, field, vocab_size, ranks, day_index))

    head_ranks = np.arange(head, dtype=np.uint64)
    head_ids = _rank_owners(config, field, vocab_size, head_ranks, day_index)
    head_words, head_rows = _encode_ids(config, field, head_ids)
    index = np.minimum(ranks, np.uint64(head - 1)).astype(np.intp)
    words = np.take(head_words, index, axis=0)
    table_rows = np.take(head_rows, index)

    tail = np.flatnonzero(ranks >= np.uint64(head))
    if len(tail):
        tail_ids = _rank_owners(config, field, vocab_size, ranks[tail], day_index)
        words[tail], table_rows[tail] = _encode_ids(config, field, tail_ids)
    return words, table_rows


def _encode_ids(
    config: SyntheticConfig, field: int, ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return the 12 hex digits of each id as ``(n, 3) uint32`` words, and its factor row.

    The digits spell ``((id ^ key) * odd) mod 2**48``, a bijection, so distinct ids get
    distinct strings. They come from a lookup table of 4-digit groups, which is several
    times faster than formatting Python strings. Ids share factor rows by ``id mod rows``.
    """
    mask = np.uint64(_ID_MASK)
    key = _field_key(config.seed, field)
    scrambled = ((ids ^ (key & mask)) * np.uint64(_ODD_MULTIPLIER)) & mask
    words = np.empty((len(ids), 3), dtype=np.uint32)
    for position, shift in enumerate((32, 16, 0)):
        words[:, position] = _HEX_TABLE[(scrambled >> np.uint64(shift)) & np.uint64(0xFFFF)]
    table_rows = (ids % np.uint64(_table_rows(config, field))).astype(np.intp)
    return words, table_rows


def _strings_from_words(words: np.ndarray, present: np.ndarray | None) -> pd.Series:
    """Wrap fixed-width id bytes as an Arrow-backed string column without copying them."""
    count = len(words)
    offsets = np.arange(0, ID_HEX_DIGITS * count + 1, ID_HEX_DIGITS, dtype=np.int64)
    validity = None
    null_count = 0
    if present is not None:
        validity = pa.py_buffer(np.packbits(present, bitorder="little"))
        null_count = int(count - present.sum())
    # pandas keeps Arrow-backed strings as large_string (int64 offsets): build that directly.
    array = pa.LargeStringArray.from_buffers(
        count,
        pa.py_buffer(offsets),
        pa.py_buffer(np.ascontiguousarray(words)),
        validity,
        null_count,
    )
    return pd.Series(pd.arrays.ArrowStringArray(array), copy=False)


def _table_rows(config: SyntheticConfig, field: int) -> int:
    return min(config.field_vocab_sizes()[field], config.factor_table_rows)


@functools.lru_cache(maxsize=256)
def _factor_table_cached(
    seed: int, field: int, rows: int, dim: int, drift_angle: float
) -> np.ndarray:
    rng = np.random.default_rng([seed, field, 0xFAC7])
    factors = rng.standard_normal((rows + 1, dim + 1), dtype=np.float32)
    if drift_angle:
        # Rotate towards independent draws: the variance stays 1, the correlation is cos.
        fresh = np.random.default_rng([seed, field, 0xD21F7])
        factors = math.cos(drift_angle) * factors + math.sin(drift_angle) * fresh.standard_normal(
            (rows + 1, dim + 1), dtype=np.float32
        )
    table = np.empty((rows + 1, dim + 2), dtype=np.float32)
    table[:, : dim + 1] = factors
    table[:, dim + 1] = np.einsum("ij,ij->i", factors[:, :dim], factors[:, :dim])
    table[rows] = 0.0
    table.flags.writeable = False
    return table


def _factor_table(config: SyntheticConfig, field: int, drifted: bool) -> np.ndarray:
    """Click-model table of one field: per row ``v`` (latent_dim columns), ``w``, ``|v|^2``.

    NOTE: the table has ``min(V, factor_table_rows) + 1`` float32 rows (the last one is
    the zero row of missing values), so vocabularies in the millions share rows by
    ``id mod rows``. The click model stays a fixed function of the id, at
    ``(latent_dim + 2) * 4 * factor_table_rows`` bytes per field.
    """
    angle = config.drift_strength * math.pi / 2 if drifted else 0.0
    return _factor_table_cached(
        config.seed, field, _table_rows(config, field), config.latent_dim, angle
    )


def _numeric_parameters(
    config: SyntheticConfig, drifted: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per numeric field: log-scale location ``mu``, scale ``sigma`` and click weight ``beta``."""
    rng = np.random.default_rng([config.seed, 0x4E0])
    mu = rng.uniform(0.0, 4.0, config.n_numeric)
    sigma = rng.uniform(0.5, 1.5, config.n_numeric)
    beta = rng.standard_normal(config.n_numeric)
    if drifted:
        angle = config.drift_strength * math.pi / 2
        fresh = np.random.default_rng([config.seed, 0x4E1]).standard_normal(config.n_numeric)
        beta = math.cos(angle) * beta + math.sin(angle) * fresh
    return mu, sigma, beta


def _calibrated_bias(config: SyntheticConfig, drifted: bool) -> float:
    return _calibrated_bias_cached(config.model_dump_json(), drifted)


@functools.lru_cache(maxsize=64)
def _calibrated_bias_cached(config_json: str, drifted: bool) -> float:
    """Bias ``b`` with ``mean(sigmoid(b + logit)) = base_ctr`` on a calibration sample.

    The sample has ``_CALIBRATION_ROWS`` rows of the first day (or of the drift day) from a
    separate random stream; Newton's method on the mean is monotone in ``b``.
    """
    config = SyntheticConfig.model_validate_json(config_json)
    day_index = config.drift_day if drifted and config.drift_day is not None else 0
    rng = np.random.default_rng([config.seed, day_index, 0xCA11B])
    _, logits = _draw_features(config, day_index, _CALIBRATION_ROWS, rng)

    target = config.base_ctr
    bias = math.log(target / (1.0 - target)) - float(np.mean(logits))
    for _ in range(50):
        probability = 1.0 / (1.0 + np.exp(-(logits + bias)))
        error = float(probability.mean()) - target
        slope = float((probability * (1.0 - probability)).mean())
        if abs(error) < 1e-7 or slope <= 0.0:
            break
        bias -= error / slope
    return bias
