"""Data of the method-vs-baselines experiments: MovieLens-100K partitions or a synthetic stream.

Both are held in memory as raw frames split into history, retained window, online days and
test days; encodings are cached per feature schema.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from crossadapt.data.encoding import EncodedFrame
    from crossadapt.data.schema import FeatureSchema

logger = logging.getLogger("bench.experiment_data")

REPO_ROOT = Path(__file__).resolve().parents[1]
MOVIELENS = "movielens-100k"
# The split of params.yaml for MovieLens-100K.
MOVIELENS_SPLIT = {
    "history_start": "1997-09-01",
    "retained_start": "1998-01-01",
    "online_start": "1998-03-01",
    "online_end": "1998-03-31",
    "test_start": "1998-04-01",
    "test_end": "1998-04-30",
}


@dataclass
class ExperimentData:
    """Raw frames of one stream in time order, split as history | retained | online days | test.

    ``drift_day`` is the first online day of an injected abrupt drift (synthetic stream only).
    """

    name: str
    field_defs: list[dict[str, Any]]
    history: pd.DataFrame
    retained: pd.DataFrame
    online_days: list[tuple[str, pd.DataFrame]]
    test: pd.DataFrame
    history_range: tuple[str, str]
    drift_day: str | None = None
    description: dict[str, Any] = field(default_factory=dict)
    _encoded: dict[tuple[str, str], EncodedFrame] = field(default_factory=dict, repr=False)

    def history_and_retained(self) -> pd.DataFrame:
        return pd.concat([self.history, self.retained], ignore_index=True)

    def encoded(self, part: str, schema: FeatureSchema) -> EncodedFrame:
        """Encode ``part`` (history_and_retained, retained, test or an online day) once per schema.

        The cache key is the schema hash, which leaves out embedding dims, so students of any
        dim share one encoding of their vocabulary.
        """
        from crossadapt.data.encoding import encode

        key = (part, schema.hash())
        if key not in self._encoded:
            started = time.perf_counter()
            self._encoded[key] = encode(self._raw(part), schema)
            logger.info(
                "%s: encoded %s, %d rows, %.2f s",
                self.name,
                part,
                len(self._encoded[key]),
                time.perf_counter() - started,
            )
        return self._encoded[key]

    def _raw(self, part: str) -> pd.DataFrame:
        if part == "history_and_retained":
            return self.history_and_retained()
        if part in ("history", "retained", "test"):
            return getattr(self, part)
        for day, frame in self.online_days:
            if day == part:
                return frame
        raise KeyError(f"unknown part {part!r} of {self.name}")

    def summary(self) -> dict[str, Any]:
        """Return the row counts and positive rates of each part, for the result files."""

        def stats(frame: pd.DataFrame) -> dict[str, Any]:
            return {"rows": len(frame), "positive_rate": round(float(frame["label"].mean()), 4)}

        online = pd.concat([frame for _, frame in self.online_days], ignore_index=True)
        return {
            "name": self.name,
            "history": stats(self.history),
            "retained": stats(self.retained),
            "online": {**stats(online), "days": len(self.online_days)},
            "test": stats(self.test),
            "drift_day": self.drift_day,
            **self.description,
        }


def load_movielens(
    data_dir: Path | None = None, split: dict[str, str] | None = None
) -> ExperimentData:
    """Read the ingested MovieLens-100K day partitions and split them like params.yaml."""
    from crossadapt.config.days import shift_day
    from crossadapt.data.dataset import field_defs_from_spec, iter_range, read_range
    from crossadapt.data.presets import movielens_100k_spec

    data_dir = data_dir or REPO_ROOT / "data"
    split = split or MOVIELENS_SPLIT
    history_end = shift_day(split["retained_start"], -1)
    retained_end = shift_day(split["online_start"], -1)
    history = read_range(data_dir, MOVIELENS, split["history_start"], history_end)
    retained = read_range(data_dir, MOVIELENS, split["retained_start"], retained_end)
    online_days = [
        (_day_of(frame), frame.reset_index(drop=True))
        for frame in iter_range(data_dir, MOVIELENS, split["online_start"], split["online_end"])
    ]
    test = read_range(data_dir, MOVIELENS, split["test_start"], split["test_end"])
    # The spec's file paths are only read by ingest; the field definitions need none.
    field_defs = field_defs_from_spec(movielens_100k_spec(data_dir / "raw" / MOVIELENS))
    history_first = _day_of(history.iloc[:1])
    return ExperimentData(
        name=MOVIELENS,
        field_defs=field_defs,
        history=history.reset_index(drop=True),
        retained=retained.reset_index(drop=True),
        online_days=online_days,
        test=test.reset_index(drop=True),
        history_range=(history_first, history_end),
        description={"split": dict(split)},
    )


@dataclass(frozen=True)
class SyntheticStream:
    """Shape of the in-memory synthetic stream: days per split, rows per day and the drift.

    ``drift_online_day`` is the index, among the online days, of the first drifted day (the
    generator's ``drift_day``); the test days come after it, so they are drifted too.
    """

    history_days: int = 10
    retained_days: int = 4
    online_days: int = 4
    test_days: int = 2
    rows_per_day: int = 50_000
    drift_online_day: int | None = 2
    drift_strength: float = 0.5
    n_categorical: int = 10
    n_numeric: int = 3
    vocab_size: int = 20_000
    seed: int = 0

    @property
    def n_days(self) -> int:
        return self.history_days + self.retained_days + self.online_days + self.test_days


def synthetic_stream(stream: SyntheticStream) -> ExperimentData:
    """Generate every day of the synthetic stream with crossadapt.data.synthetic, in memory."""
    from crossadapt.data.synthetic import SyntheticConfig, generate_day, synthetic_field_defs

    started = time.perf_counter()
    first_online = stream.history_days + stream.retained_days
    drift_day = None if stream.drift_online_day is None else first_online + stream.drift_online_day
    config = SyntheticConfig(
        n_days=stream.n_days,
        rows_per_day=stream.rows_per_day,
        n_categorical=stream.n_categorical,
        n_numeric=stream.n_numeric,
        vocab_sizes=stream.vocab_size,
        drift_day=drift_day,
        drift_strength=stream.drift_strength,
        seed=stream.seed,
    )
    days = [(config.day(index), generate_day(config, index)) for index in range(stream.n_days)]

    def joined(first: int, last: int) -> pd.DataFrame:
        return pd.concat([frame for _, frame in days[first:last]], ignore_index=True)

    data = ExperimentData(
        name="synthetic",
        field_defs=synthetic_field_defs(config),
        history=joined(0, stream.history_days),
        retained=joined(stream.history_days, first_online),
        online_days=days[first_online : first_online + stream.online_days],
        test=joined(first_online + stream.online_days, stream.n_days),
        history_range=(days[0][0], days[stream.history_days - 1][0]),
        drift_day=None if drift_day is None else config.day(drift_day),
        description={
            "generator": config.model_dump(),
            "stream": {
                "history_days": stream.history_days,
                "retained_days": stream.retained_days,
                "online_days": stream.online_days,
                "test_days": stream.test_days,
            },
        },
    )
    logger.info(
        "synthetic stream: %d days of %d rows generated in %.1f s, drift day %s",
        stream.n_days,
        stream.rows_per_day,
        time.perf_counter() - started,
        data.drift_day,
    )
    return data


def fit_teacher_schema(data: ExperimentData) -> FeatureSchema:
    """Fit the teacher's vocabulary on the history only, as tasks/train_teacher.py does."""
    from crossadapt.data.schema import fit_schema

    return fit_schema([data.history], data.field_defs, 1, data.history_range, data.name)


def fit_retained_schema(data: ExperimentData) -> FeatureSchema:
    """Fit a vocabulary on the retained window only: the scratch student never sees history."""
    from crossadapt.data.schema import fit_schema

    first = _day_of(data.retained.iloc[:1])
    last = _day_of(data.retained.iloc[-1:])
    return fit_schema([data.retained], data.field_defs, 1, (first, last), data.name)


def _day_of(frame: pd.DataFrame) -> str:
    timestamp = int(frame["timestamp"].iloc[0])
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp))
