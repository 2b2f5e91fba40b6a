"""Fetch MovieLens-100K from the ``recbole==1.2.1`` wheel on PyPI, checking every sha256.

The GroupLens license forbids redistribution, so the files are fetched at set-up into
``<data_dir>/raw/movielens-100k/`` and never committed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from crossadapt.errors import DataError
from crossadapt.storage.atomic import atomic_write_bytes
from crossadapt.storage.hashing import sha256_file

logger = logging.getLogger(__name__)

RECBOLE_REQUIREMENT = "recbole==1.2.1"
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_WHEEL_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
MOVIELENS_MEMBER_PREFIX = "recbole/dataset_example/ml-100k/"
MOVIELENS_FILES = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
}
RAW_SUBDIR = Path("raw") / "movielens-100k"
CACHE_SUBDIR = Path("cache") / "pip"
PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class FetchResult:
    """Result of a fetch: the folder, the file hashes, and whether it downloaded or extracted."""

    folder: Path
    files: dict[str, str] = field(default_factory=dict)
    downloaded: bool = False
    extracted: bool = False

    def to_dict(self) -> dict[str, object]:
        return {
            "folder": str(self.folder),
            "files": dict(self.files),
            "downloaded": self.downloaded,
            "extracted": self.extracted,
        }


def fetch_movielens_100k(data_dir: str | os.PathLike[str], quiet: bool = False) -> FetchResult:
    """Make ``<data_dir>/raw/movielens-100k/ml-100k.{inter,user,item}`` exist with the known hashes.

    Does nothing when the three files are already there and intact. Otherwise downloads
    the recbole wheel with pip into ``<data_dir>/cache/pip`` (unless a verified copy is
    already cached) and extracts the files. Raises DataError on a failed download or a
    sha256 mismatch.
    """
    folder = Path(data_dir) / RAW_SUBDIR
    if _all_present(folder, MOVIELENS_FILES):
        logger.info("MovieLens-100K is up to date in %s", folder)
        return FetchResult(folder, dict(MOVIELENS_FILES))

    cache = Path(data_dir) / CACHE_SUBDIR
    wheel = cache / RECBOLE_WHEEL
    downloaded = False
    if not (wheel.is_file() and sha256_file(wheel) == RECBOLE_WHEEL_SHA256):
        download_wheel(RECBOLE_REQUIREMENT, cache, quiet=quiet)
        downloaded = True
        if not wheel.is_file():
            raise DataError(
                f"pip download {RECBOLE_REQUIREMENT} did not write {wheel}; put that wheel "
                f"into {cache} by hand"
            )
    check_sha256(wheel, RECBOLE_WHEEL_SHA256, remove_on_mismatch=True)

    extract_members(wheel, MOVIELENS_MEMBER_PREFIX, MOVIELENS_FILES, folder)
    logger.info("MovieLens-100K extracted to %s", folder)
    return FetchResult(folder, dict(MOVIELENS_FILES), downloaded=downloaded, extracted=True)


def download_wheel(requirement: str, dest: Path, quiet: bool = False) -> None:
    """Run ``python -m pip download --no-deps --only-binary=:all: <requirement>`` into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        requirement,
    ]
    if quiet:
        command.append("--quiet")
    logger.info("downloading %s into %s", requirement, dest)
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired:
        raise DataError(
            f"pip download {requirement} timed out after {PIP_TIMEOUT_S} s: check the network "
            f"access to the package index, or put {RECBOLE_WHEEL} into {dest} by hand"
        ) from None
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-5:])
        raise DataError(
            f"pip download {requirement} failed (exit {completed.returncode}):\n{tail}\n"
            f"Check the network access to the package index, or put {RECBOLE_WHEEL} into "
            f"{dest} by hand"
        )


def check_sha256(path: Path, expected: str, remove_on_mismatch: bool = False) -> None:
    """Raise DataError if ``path``'s sha256 is not ``expected``; optionally delete the file."""
    actual = sha256_file(path)
    if actual == expected:
        return
    if remove_on_mismatch:
        path.unlink()
    action = "It was deleted; run the command again. If" if remove_on_mismatch else "If"
    raise DataError(
        f"sha256 mismatch for {path}: expected {expected}, got {actual}. {action} it happens "
        "again, the package index serves a different file than the one this project was "
        "checked against"
    )


def extract_members(archive: Path, prefix: str, members: dict[str, str], dest: Path) -> list[Path]:
    """Extract ``prefix + name`` for each ``name`` of ``members`` into ``dest``, checking sha256.

    Each file is verified in memory before it is written (atomically), so ``dest`` never
    contains a file with a wrong hash.
    """
    written = []
    try:
        with zipfile.ZipFile(archive) as wheel:
            available = set(wheel.namelist())
            for name, expected in members.items():
                member = prefix + name
                if member not in available:
                    raise DataError(
                        f"{archive} has no member {member}: the archive is not the expected "
                        "release; delete it and run the command again"
                    )
                content = wheel.read(member)
                actual = hashlib.sha256(content).hexdigest()
                if actual != expected:
                    raise DataError(
                        f"sha256 mismatch for {member} in {archive}: expected {expected}, got "
                        f"{actual}; delete the archive and run the command again"
                    )
                target = dest / name
                atomic_write_bytes(target, content)
                written.append(target)
    except zipfile.BadZipFile as error:
        raise DataError(
            f"{archive} is not a valid wheel/zip file ({error}); delete it and run the command "
            "again"
        ) from None
    return written


def _all_present(folder: Path, files: dict[str, str]) -> bool:
    for name, expected in files.items():
        path = folder / name
        if not path.is_file():
            return False
        if sha256_file(path) != expected:
            logger.warning("%s has an unexpected sha256; extracting it again", path)
            return False
    return True
