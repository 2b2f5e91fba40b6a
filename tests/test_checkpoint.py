"""Tests of checkpoint files: round trip, and rejection of missing, damaged and crafted files."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from crossadapt.data.encoding import encode
from crossadapt.data.schema import FeatureSchema, fit_schema
from crossadapt.errors import CheckpointError
from crossadapt.models.registry import build_model
from crossadapt.storage.checkpoint import (
    FORMAT_VERSION,
    load_checkpoint,
    load_model,
    save_checkpoint,
    save_model_checkpoint,
)
from crossadapt.storage.hashing import sha256_bytes, sha256_file
from crossadapt.training.trainer import TrainConfig, make_optimizer, predict_logits, train

SCHEMA_HASH = "a" * 64
SCHEMA = {"format_version": 1, "dataset": "test", "fields": [{"name": "user_id", "vocab_size": 5}]}


def write_checkpoint(path: Path, **overrides: object) -> Path:
    model = nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    arguments: dict[str, object] = {
        "role": "teacher",
        "arch": "dnn",
        "model_config": {"hidden_units": [8, 4], "dropout": 0.0},
        "schema_dict": SCHEMA,
        "schema_hash": SCHEMA_HASH,
        "state_dict": model.state_dict(),
        "optimizer_state": optimizer.state_dict(),
        "meta": {"day": "1998-03-01", "rows": 12, "auc": 0.71},
    }
    arguments.update(overrides)
    return save_checkpoint(path, **arguments)


class WritesMarkerOnLoad:
    """Pickles to a call of open(marker, "w"): unpickling it creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "teacher.pt")
    checkpoint = load_checkpoint(path, expected_schema_hash=SCHEMA_HASH)

    assert checkpoint.path == path
    assert checkpoint.role == "teacher"
    assert checkpoint.arch == "dnn"
    assert checkpoint.format_version == FORMAT_VERSION
    assert checkpoint.model_config == {"hidden_units": [8, 4], "dropout": 0.0}
    assert checkpoint.schema == SCHEMA
    assert checkpoint.meta == {"day": "1998-03-01", "rows": 12, "auc": 0.71}
    assert set(checkpoint.state_dict) == {"weight", "bias"}
    assert checkpoint.state_dict["weight"].shape == (1, 3)
    assert checkpoint.optimizer_state["state"][0]["step"] == 1


def test_checkpoint_restores_model_and_optimizer(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(2, 3)).sum().backward()
    optimizer.step()
    path = write_checkpoint(
        tmp_path / "student.pt",
        role="student",
        state_dict=model.state_dict(),
        optimizer_state=optimizer.state_dict(),
    )

    checkpoint = load_checkpoint(path)
    restored = nn.Linear(3, 1)
    restored.load_state_dict(checkpoint.state_dict)
    restored_optimizer = torch.optim.Adam(restored.parameters(), lr=0.01)
    restored_optimizer.load_state_dict(checkpoint.optimizer_state)
    assert checkpoint.role == "student"
    assert torch.equal(restored.weight, model.weight)
    exp_avg = restored_optimizer.state[restored.weight]["exp_avg"]
    assert torch.equal(exp_avg, optimizer.state[model.weight]["exp_avg"])


def test_checkpoint_write_leaves_no_temp_file(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "teacher.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["teacher.pt"]


def test_checkpoint_save_rejects_unloadable_meta(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match=r"checkpoint\['meta'\]\['auc'\] has type float64"):
        write_checkpoint(tmp_path / "teacher.pt", meta={"auc": np.float64(0.7)})
    assert list(tmp_path.iterdir()) == []


def test_checkpoint_save_rejects_unknown_role(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="role"):
        write_checkpoint(tmp_path / "x.pt", role="baseline")


def test_checkpoint_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"teacher\.pt not found"):
        load_checkpoint(tmp_path / "teacher.pt")


@pytest.mark.parametrize("keep_fraction", [0.0, 0.5, 0.9])
def test_checkpoint_truncated_file(tmp_path: Path, keep_fraction: float) -> None:
    path = write_checkpoint(tmp_path / "teacher.pt")
    content = path.read_bytes()
    path.write_bytes(content[: int(len(content) * keep_fraction)])
    with pytest.raises(CheckpointError, match=r"teacher\.pt is truncated or corrupt"):
        load_checkpoint(path)


def test_checkpoint_foreign_bytes(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_bytes(b"this is not a checkpoint\n" * 10)
    with pytest.raises(CheckpointError, match=r"notes\.pt is truncated or corrupt"):
        load_checkpoint(path)


def test_checkpoint_not_a_dict(tmp_path: Path) -> None:
    path = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], path)
    with pytest.raises(CheckpointError, match=r"list\.pt contains a list"):
        load_checkpoint(path)


def test_checkpoint_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "weights.pt"
    torch.save(nn.Linear(2, 1).state_dict(), path)
    with pytest.raises(
        CheckpointError, match=r"weights\.pt is missing the keys \['format_version'"
    ):
        load_checkpoint(path)


def test_checkpoint_wrong_format_version(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "teacher.pt")
    content = torch.load(path, weights_only=True)
    content["format_version"] = 99
    torch.save(content, path)
    with pytest.raises(CheckpointError, match="format_version 99"):
        load_checkpoint(path)


def test_checkpoint_schema_hash_mismatch(tmp_path: Path) -> None:
    path = write_checkpoint(tmp_path / "teacher.pt")
    other_hash = "b" * 64
    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(path, expected_schema_hash=other_hash)
    message = str(raised.value)
    assert "teacher.pt was trained on another feature schema" in message
    assert SCHEMA_HASH in message
    assert other_hash in message
    assert "Re-run the fit and transfer steps" in message


def test_checkpoint_crafted_payload_is_live(tmp_path: Path) -> None:
    # Control: a plain pickle load of the payload does run it, so the tests below can fail.
    marker = tmp_path / "marker"
    handle = pickle.loads(pickle.dumps(WritesMarkerOnLoad(marker)))
    handle.close()
    assert marker.exists()


def test_checkpoint_crafted_torch_file_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "crafted.pt"
    torch.save({"format_version": 1, "state_dict": WritesMarkerOnLoad(marker)}, path)
    with pytest.raises(CheckpointError, match=r"crafted\.pt was rejected"):
        load_checkpoint(path)
    assert not marker.exists()


def test_checkpoint_crafted_plain_pickle_rejected(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "crafted.pt"
    path.write_bytes(pickle.dumps(WritesMarkerOnLoad(marker), protocol=2))
    with pytest.raises(CheckpointError, match=r"crafted\.pt was rejected"):
        load_checkpoint(path)
    assert not marker.exists()


def test_sha256_file_matches_hashlib(tmp_path: Path) -> None:
    data = np.random.default_rng(0).bytes(3_000_001)
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    expected = hashlib.sha256(data).hexdigest()
    assert sha256_file(path) == expected
    assert sha256_file(path, chunk_bytes=4096) == expected
    assert sha256_bytes(data) == expected
    assert sha256_bytes(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# Real schema, encoder and model zoo


def make_click_log(rows: int, seed: int) -> pd.DataFrame:
    """Return partition-like rows whose click rate depends on the user and the age."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 40, size=rows)
    ages = rng.uniform(18, 70, size=rows)
    genres = np.array(["drama", "comedy|drama", "action", "action|comedy|horror"])
    click_logit = np.linspace(-2, 2, 40)[users] + 0.03 * (ages - 40)
    labels = (rng.uniform(size=rows) < 1 / (1 + np.exp(-click_logit))).astype(np.int8)
    return pd.DataFrame(
        {
            "timestamp": 883612800 + np.arange(rows, dtype=np.int64) * 60,
            "label": labels,
            "user_id": [f"u{u}" for u in users],
            "genres": genres[rng.integers(0, 4, size=rows)],
            "age": ages,
        }
    )


FIELD_DEFS = [
    {"name": "user_id", "type": "categorical", "source": "user"},
    {"name": "genres", "type": "multi_valued", "source": "item"},
    {"name": "age", "type": "numeric", "source": "user", "transform": "log"},
]


def fit_log_schema(log: pd.DataFrame, embedding_dim: int) -> FeatureSchema:
    schema = fit_schema(
        [log], FIELD_DEFS, min_count=1, fit_range=("1998-01-01", "1998-01-31"), dataset="clicks"
    )
    return schema.with_embedding_dims(embedding_dim)


def test_model_checkpoint_round_trip(tmp_path: Path) -> None:
    log = make_click_log(2000, seed=0)
    schema = fit_log_schema(log, embedding_dim=4)
    frame = encode(log, schema)
    torch.manual_seed(0)
    model = build_model("dnn", schema, {"hidden_units": [16, 8]})
    optimizer = make_optimizer(model, lr_embedding=0.05, lr_dense=0.01)
    train(model, frame, None, TrainConfig(epochs=1, batch_size=256), optimizer=optimizer)

    path = save_model_checkpoint(
        tmp_path / "teacher.pt", model, optimizer, schema, role="teacher", meta={"rows": 2000}
    )
    restored, checkpoint = load_model(path, schema=schema)

    assert checkpoint.arch == "dnn"
    assert checkpoint.role == "teacher"
    assert checkpoint.schema_hash == schema.hash()
    assert checkpoint.model_config["hidden_units"] == [16, 8]
    assert checkpoint.meta == {"rows": 2000}
    assert type(restored) is type(model)
    np.testing.assert_array_equal(predict_logits(restored, frame), predict_logits(model, frame))

    restored_optimizer = make_optimizer(restored, lr_embedding=0.05, lr_dense=0.01)
    restored_optimizer.load_state_dict(checkpoint.optimizer_state)
    assert [group["name"] for group in restored_optimizer.param_groups] == ["embedding", "dense"]


def test_load_model_accepts_other_embedding_dims(tmp_path: Path) -> None:
    # Embedding dims belong to the model: data encoded with the same vocabularies matches.
    log = make_click_log(300, seed=0)
    schema = fit_log_schema(log, embedding_dim=4)
    model = build_model("dnn", schema, {"hidden_units": [8]})
    path = save_model_checkpoint(tmp_path / "student.pt", model, None, schema, role="student")

    restored, checkpoint = load_model(path, schema=schema.with_embedding_dims(16))
    assert checkpoint.optimizer_state is None
    assert restored.embedding.get_table("user_id").shape[1] == 4


def test_load_model_rejects_other_schema(tmp_path: Path) -> None:
    log = make_click_log(300, seed=0)
    schema = fit_log_schema(log, embedding_dim=4)
    model = build_model("dnn", schema, {"hidden_units": [8]})
    path = save_model_checkpoint(tmp_path / "teacher.pt", model, None, schema, role="teacher")

    other_schema = fit_log_schema(make_click_log(300, seed=1).iloc[:50], embedding_dim=4)
    assert other_schema.hash() != schema.hash()
    with pytest.raises(CheckpointError, match="trained on another feature schema"):
        load_model(path, schema=other_schema)


def test_load_model_rejects_mismatched_weights(tmp_path: Path) -> None:
    log = make_click_log(300, seed=0)
    schema = fit_log_schema(log, embedding_dim=4)
    model = build_model("dnn", schema, {"hidden_units": [8]})
    state_dict = model.state_dict()
    state_dict.pop(next(iter(state_dict)))
    path = save_checkpoint(
        tmp_path / "teacher.pt",
        role="teacher",
        arch="dnn",
        model_config=model.config.model_dump(mode="json"),
        schema_dict=schema.to_dict(),
        schema_hash=schema.hash(),
        state_dict=state_dict,
    )
    with pytest.raises(CheckpointError, match=r"teacher\.pt: its weights do not fit a dnn model"):
        load_model(path)
