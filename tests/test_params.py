"""Tests of params.yaml loading: defaults, overrides, range and cross-field checks, paths."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from crossadapt.config.days import day_range, day_start_timestamp, shift_day
from crossadapt.config.params import ARCHITECTURES, apply_overrides, load_params
from crossadapt.errors import ParamsError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """A copy of the project's params.yaml in an empty project folder."""
    target = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", target)
    return target


def write_params(path: Path, **sections: dict) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    for section, values in sections.items():
        data[section].update(values)
    path.write_text(yaml.safe_dump(data))
    return path


def test_project_params_load() -> None:
    params = load_params(REPO / "params.yaml")

    assert params.dataset.name == "movielens-100k"
    assert params.dataset_name() == "movielens-100k"
    assert params.student.arch in ARCHITECTURES
    assert params.project_root == REPO
    assert params.data_dir() == REPO / "data"
    assert params.artifacts_dir() == REPO / "artifacts"


def test_split_day_ranges(params_file: Path) -> None:
    params = load_params(params_file)

    online = params.online_days()
    assert len(online) == 31
    assert online[0] == "1998-03-01"
    assert online[-1] == "1998-03-31"
    assert params.history_days()[0] == "1997-09-01"
    assert params.history_days()[-1] == "1997-12-31"
    assert params.retained_days()[0] == "1998-01-01"
    assert params.retained_days()[-1] == "1998-02-28"
    assert len(params.test_days()) == 30


def test_day_helpers() -> None:
    assert day_range("1998-02-27", "1998-03-01") == ["1998-02-27", "1998-02-28", "1998-03-01"]
    assert day_range("1998-03-02", "1998-03-01") == []
    assert shift_day("1998-03-01", -1) == "1998-02-28"
    assert day_start_timestamp("1970-01-02") == 86_400


@pytest.mark.parametrize(
    ("key", "value", "fragments"),
    [
        ("student.embedding_dim", 0, ["student.embedding_dim = 0", "greater than or equal to 1"]),
        ("teacher.embedding_dim", -3, ["teacher.embedding_dim = -3"]),
        ("teacher.arch", "resnet", ["teacher.arch = 'resnet'", "'dcnv2'", "'finalmlp'"]),
        ("student.arch", "DCNv2", ["student.arch = 'DCNv2'"]),
        ("distill.temperature", 0, ["distill.temperature = 0", "greater than 0"]),
        ("online.temperature", -1.0, ["online.temperature = -1.0"]),
        ("distill.alpha", 1.5, ["distill.alpha = 1.5", "less than or equal to 1"]),
        ("online.alpha", -0.1, ["online.alpha = -0.1"]),
        ("sampling.ratio", 0.0, ["sampling.ratio = 0.0", "greater than 0"]),
        ("sampling.ratio", 1.5, ["sampling.ratio = 1.5", "less than or equal to 1"]),
        ("sampling.strategy", "random", ["sampling.strategy = 'random'", "'balanced'"]),
        ("dataset.name", "imagenet", ["dataset.name = 'imagenet'", "'movielens-100k'"]),
        ("split.test_end", "1998-13-01", ["split.test_end", "not a calendar date"]),
        ("split.online_start", "1998/03/01", ["split.online_start", "YYYY-MM-DD"]),
        ("student.hidden_units", [64, 0], ["student.hidden_units.1 = 0"]),
        ("teacher.weight_init", "he", ["teacher.weight_init = 'he'", "'xavier'"]),
        ("paths.data_dir", "../outside", ["paths.data_dir = '../outside'", "contains '..'"]),
        ("paths.data_dir", "data/../../x", ["contains '..'"]),
        ("paths.artifacts_dir", "/tmp/elsewhere", ["outside the project"]),
        ("adaptation.alpha_min", 0.9, ["alpha_min (0.9) must be <= alpha_max (0.7)"]),
    ],
)
def test_invalid_value_names_key(params_file: Path, key: str, value: object, fragments) -> None:
    with pytest.raises(ParamsError) as caught:
        load_params(params_file, overrides={key: value})

    message = str(caught.value)
    assert str(params_file) in message
    for fragment in fragments:
        assert fragment in message


def test_model_options_reach_model_config(params_file: Path) -> None:
    from tasks.common import model_config

    params = load_params(
        params_file,
        overrides={"student.weight_init": "xavier", "teacher.sparse_gradients": True},
    )

    assert model_config(params.student)["weight_init"] == "xavier"
    assert model_config(params.teacher)["weight_init"] == "torch"
    assert model_config(params.teacher)["sparse_gradients"] is True
    assert model_config(params.student)["sparse_gradients"] is False


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"split.online_start": "1998-04-15"}, "online_start (1998-04-15) must be <= online_end"),
        ({"split.retained_start": "1998-03-01"}, "retained_start (1998-03-01) must be <"),
        ({"split.test_start": "1998-03-31"}, "online_end (1998-03-31) must be < test_start"),
        ({"split.history_start": "1998-01-02"}, "history_start (1998-01-02) must be <="),
        ({"split.test_end": "1998-03-31"}, "test_start (1998-04-01) must be <= test_end"),
    ],
)
def test_split_dates_out_of_order(params_file: Path, overrides: dict, fragment: str) -> None:
    with pytest.raises(ParamsError, match="split dates out of order") as caught:
        load_params(params_file, overrides=overrides)

    assert fragment in str(caught.value)


def test_unknown_key_lists_allowed(params_file: Path) -> None:
    with pytest.raises(ParamsError) as caught:
        load_params(params_file, overrides={"student.embeding_dim": 8, "extra_section": {}})

    message = str(caught.value)
    assert "student.embeding_dim: unknown key" in message
    assert "embedding_dim" in message.split("student.embeding_dim")[1]
    assert "extra_section: unknown key" in message


def test_several_errors_reported_together(params_file: Path) -> None:
    with pytest.raises(ParamsError) as caught:
        load_params(params_file, overrides={"teacher.epochs": 0, "distill.alpha": 2})

    message = str(caught.value)
    assert "teacher.epochs = 0" in message
    assert "distill.alpha = 2" in message


def test_absolute_path_inside_project_allowed(params_file: Path) -> None:
    inside = params_file.parent / "store" / "data"

    params = load_params(params_file, overrides={"paths.data_dir": str(inside)})

    assert params.data_dir() == inside.resolve()


def test_relative_paths_resolve_against_file_folder(params_file: Path, monkeypatch) -> None:
    monkeypatch.chdir(REPO)

    params = load_params(params_file, overrides={"paths.data_dir": "local/data"})

    assert params.data_dir() == (params_file.parent / "local" / "data").resolve()


def test_overrides_dotted_and_nested(params_file: Path) -> None:
    params = load_params(
        params_file,
        overrides={"student.arch": "fibinet", "distill": {"alpha": 0.5}, "seed": 7},
    )

    assert params.student.arch == "fibinet"
    assert params.distill.alpha == 0.5
    assert params.distill.temperature == 4.0
    assert params.seed == 7


def test_override_through_value_rejected() -> None:
    with pytest.raises(ParamsError, match=r"seed in params\.yaml is a value, not a section"):
        apply_overrides({"seed": 1}, {"seed.value": 2})


def test_unquoted_yaml_dates_accepted(tmp_path: Path) -> None:
    text = (REPO / "params.yaml").read_text().replace('"1998-03-01"', "1998-03-01")
    assert "online_start: 1998-03-01" in text
    path = tmp_path / "params.yaml"
    path.write_text(text)

    params = load_params(path)

    assert params.split.online_start == "1998-03-01"


def test_missing_file_names_path(tmp_path: Path) -> None:
    with pytest.raises(ParamsError, match=r"nothere\.yaml not found"):
        load_params(tmp_path / "nothere.yaml")


def test_invalid_yaml_reports_line(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("seed: 1\nstudent: [unclosed\n")

    with pytest.raises(ParamsError, match="not valid YAML") as caught:
        load_params(path)

    assert "line" in str(caught.value)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("- 1\n- 2\n")

    with pytest.raises(ParamsError, match="must contain a mapping"):
        load_params(path)


def test_criteo_needs_path(params_file: Path) -> None:
    with pytest.raises(ParamsError, match=r"set dataset\.path"):
        load_params(params_file, overrides={"dataset.name": "criteo"})


def test_generic_spec_validated(tmp_path: Path) -> None:
    generic = {
        "name": "shop",
        "files": ["logs/shop.csv"],
        "label": {"column": "clicked", "positive_values": ["yes"]},
        "timestamp": {"column": "ts", "format": "unix_ms"},
        "categorical": [{"name": "user", "source": "user"}],
    }
    path = write_params(tmp_path / "params.yaml", dataset={"name": "generic", "generic": generic})

    params = load_params(path)

    assert params.dataset_name() == "shop"
    assert params.dataset.generic is not None
    assert params.dataset.generic.timestamp.format == "unix_ms"


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"name": "../escape"}, ["dataset.generic", "'../escape' is invalid"]),
        ({"name": "Shop Logs"}, ["dataset name 'Shop Logs' is invalid"]),
        ({"timestamp": {"column": "ts", "format": "epoch"}}, ["timestamp.format 'epoch'"]),
        ({"timestamp": {"format": "none"}}, ["needs rows_per_day and start_date"]),
        (
            {"categorical": [{"name": "user", "source": "person"}]},
            ["dataset.generic.categorical.0.source = 'person'", "'user', 'item' or 'context'"],
        ),
        ({"label": {"column": "clicked"}}, ["exactly one of label.positive_values"]),
        ({"categorical": [{"name": "label", "source": "user"}]}, ["reserved"]),
        ({"extra": 1}, ["dataset.generic.extra: unknown key", "side_tables"]),
    ],
)
def test_generic_spec_errors(tmp_path: Path, change: dict, fragments: list[str]) -> None:
    generic = {
        "name": "shop",
        "files": ["shop.csv"],
        "label": {"column": "clicked", "positive_values": ["1"]},
        "timestamp": {"column": "ts"},
        "categorical": [{"name": "user", "source": "user"}],
        **change,
    }
    path = write_params(tmp_path / "params.yaml", dataset={"name": "generic", "generic": generic})

    with pytest.raises(ParamsError) as caught:
        load_params(path)

    for fragment in fragments:
        assert fragment in str(caught.value)
