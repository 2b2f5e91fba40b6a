"""DatasetSpec presets for MovieLens-100K, Open Bandit, Criteo and Avazu, and ``resolve_spec``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from crossadapt.data.spec import (
    CategoricalColumn,
    DatasetSpec,
    LabelSpec,
    MultiValuedColumn,
    NumericColumn,
    SideTableSpec,
    TimestampSpec,
)
from crossadapt.errors import ParamsError

if TYPE_CHECKING:
    from crossadapt.config.params import Params

MOVIELENS_RAW_SUBDIR = Path("raw") / "movielens-100k"
OPEN_BANDIT_FILES = (
    "datasets/open-bandit/bts/all/all.csv.gz",
    "datasets/open-bandit/random/all/all.csv.gz",
)
# Age groups of the MovieLens-1M README (under 18, 18-24, 25-34, 35-44, 45-49, 50-55, 56+).
MOVIELENS_AGE_BOUNDARIES = [18.0, 25.0, 35.0, 45.0, 50.0, 56.0]
# Maximum number of genres of one ML-100K movie (3 movies have 6).
MOVIELENS_MAX_GENRES = 6


def movielens_100k_spec(folder: str | Path, label_threshold: float = 4.0) -> DatasetSpec:
    """MovieLens-100K in RecBole's atomic files (``ml-100k.{inter,user,item}``, tab-separated).

    Label: ``rating >= label_threshold`` (ratings 1-5). Time: Unix seconds, days are UTC dates.
    Features: user_id, item_id, gender, occupation, zip_prefix (first 2 characters of the
    zip code), release_year, age (bucketed at encoding), genres (multi-valued).
    """
    base = Path(folder)
    return DatasetSpec(
        name="movielens-100k",
        files=[str(base / "ml-100k.inter")],
        delimiter="\t",
        rename={
            "user_id:token": "user_id",
            "item_id:token": "item_id",
            "rating:float": "rating",
            "timestamp:float": "timestamp",
        },
        label=LabelSpec(column="rating", threshold=label_threshold, valid_range=(1.0, 5.0)),
        timestamp=TimestampSpec(column="timestamp", format="unix_s"),
        categorical=[
            CategoricalColumn(name="user_id", source="user"),
            CategoricalColumn(name="item_id", source="item"),
            CategoricalColumn(name="gender", source="user", table="user"),
            CategoricalColumn(name="occupation", source="user", table="user"),
            CategoricalColumn(
                name="zip_prefix", source="user", table="user", column="zip_code", prefix_length=2
            ),
            CategoricalColumn(name="release_year", source="item", table="item"),
        ],
        numeric=[
            NumericColumn(
                name="age",
                source="user",
                table="user",
                transform="bucket",
                boundaries=MOVIELENS_AGE_BOUNDARIES,
            ),
        ],
        multi_valued=[
            MultiValuedColumn(
                name="genres",
                source="item",
                table="item",
                column="class",
                separator=" ",
                max_len=MOVIELENS_MAX_GENRES,
            ),
        ],
        side_tables=[
            SideTableSpec(
                name="user",
                path=str(base / "ml-100k.user"),
                delimiter="\t",
                key="user_id",
                rename={
                    "user_id:token": "user_id",
                    "age:token": "age",
                    "gender:token": "gender",
                    "occupation:token": "occupation",
                    "zip_code:token": "zip_code",
                },
            ),
            SideTableSpec(
                name="item",
                path=str(base / "ml-100k.item"),
                delimiter="\t",
                key="item_id",
                rename={
                    "item_id:token": "item_id",
                    "movie_title:token_seq": "movie_title",
                    "release_year:token": "release_year",
                    "class:token_seq": "class",
                },
            ),
        ],
    )


def open_bandit_spec(files: list[str] | None = None) -> DatasetSpec:
    """Open Bandit Dataset logs (obp CSV layout), each joined with its own ``item_context.csv``.

    The item context hashes differ between logging policies, so the side table is read
    from the folder of each log file. Label: ``click``. Time: ISO 8601 with offset.
    """
    return DatasetSpec(
        name="open-bandit",
        files=list(files) if files is not None else list(OPEN_BANDIT_FILES),
        label=LabelSpec(column="click", positive_values=["1"], negative_values=["0"]),
        timestamp=TimestampSpec(column="timestamp", format="iso8601"),
        categorical=[
            CategoricalColumn(name="item_id", source="item"),
            CategoricalColumn(name="position", source="context"),
            *[CategoricalColumn(name=f"user_feature_{i}", source="user") for i in range(4)],
            *[
                CategoricalColumn(name=f"item_feature_{i}", source="item", table="item_context")
                for i in range(1, 4)
            ],
        ],
        numeric=[
            NumericColumn(
                name="item_feature_0", source="item", table="item_context", transform="log"
            ),
        ],
        side_tables=[
            SideTableSpec(name="item_context", path="{dir}/item_context.csv", key="item_id"),
        ],
    )


def criteo_spec(
    files: list[str], rows_per_day: int = 100_000, start_date: str = "2014-01-01"
) -> DatasetSpec:
    """Criteo Kaggle ``train.txt``: tab-separated, no header, label, I1..I13, C1..C26.

    The file has no time column but is in time order, so consecutive blocks of
    ``rows_per_day`` rows become days starting on ``start_date``. Blank fields are missing.
    """
    numeric_names = [f"I{i}" for i in range(1, 14)]
    categorical_names = [f"C{i}" for i in range(1, 27)]
    return DatasetSpec(
        name="criteo",
        files=list(files),
        delimiter="\t",
        header=False,
        column_names=["label", *numeric_names, *categorical_names],
        label=LabelSpec(column="label", positive_values=["1"], negative_values=["0"]),
        timestamp=TimestampSpec(format="none", rows_per_day=rows_per_day, start_date=start_date),
        categorical=[CategoricalColumn(name=name, source="context") for name in categorical_names],
        numeric=[
            NumericColumn(name=name, source="context", transform="log") for name in numeric_names
        ],
    )


AVAZU_USER_COLUMNS = ("device_id", "device_ip", "device_model", "device_type", "device_conn_type")
AVAZU_ITEM_COLUMNS = tuple(f"C{i}" for i in range(14, 22))
AVAZU_CONTEXT_COLUMNS = (
    "C1",
    "banner_pos",
    "site_id",
    "site_domain",
    "site_category",
    "app_id",
    "app_domain",
    "app_category",
)


def avazu_spec(files: list[str]) -> DatasetSpec:
    """Avazu Kaggle CSV: label ``click``, time ``hour`` (YYMMDDHH, UTC), all other columns
    categorical except ``id``, which is not used."""
    categorical = [
        *[CategoricalColumn(name=name, source="context") for name in AVAZU_CONTEXT_COLUMNS],
        *[CategoricalColumn(name=name, source="user") for name in AVAZU_USER_COLUMNS],
        *[CategoricalColumn(name=name, source="item") for name in AVAZU_ITEM_COLUMNS],
    ]
    return DatasetSpec(
        name="avazu",
        files=list(files),
        label=LabelSpec(column="click", positive_values=["1"], negative_values=["0"]),
        timestamp=TimestampSpec(column="hour", format="%y%m%d%H"),
        categorical=categorical,
    )


def resolve_spec(params: Params) -> DatasetSpec:
    """DatasetSpec of ``params.dataset``, with file paths made absolute against the project root."""
    dataset = params.dataset
    root = params.project_root
    paths = [dataset.path] if isinstance(dataset.path, str) else dataset.path

    if dataset.name == "movielens-100k":
        if paths is not None and len(paths) != 1:
            raise ParamsError(
                f"dataset.path {dataset.path!r}: for movielens-100k give one folder that "
                "contains ml-100k.inter, ml-100k.user and ml-100k.item"
            )
        folder = root / paths[0] if paths else params.data_dir() / MOVIELENS_RAW_SUBDIR
        spec = movielens_100k_spec(folder, label_threshold=dataset.label_threshold)
    elif dataset.name == "open-bandit":
        spec = open_bandit_spec(paths)
    elif dataset.name == "criteo":
        spec = criteo_spec(paths or [], dataset.rows_per_day, dataset.start_date)
    elif dataset.name == "avazu":
        spec = avazu_spec(paths or [])
    elif dataset.name == "generic" and dataset.generic is not None:
        spec = dataset.generic
    else:
        raise ParamsError(
            f"dataset.name {dataset.name!r} has no raw files to ingest: synthetic data is "
            "written by crossadapt.data.synthetic; choose a preset or 'generic' to ingest a log"
        )
    return spec.resolve_paths(root)
