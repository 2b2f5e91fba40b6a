"""SHA-256 digests of files and bytes, for manifests, checkpoints and the online ledger."""

from __future__ import annotations

import hashlib
import os

CHUNK_BYTES = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Return the hex SHA-256 digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk_bytes: int = CHUNK_BYTES) -> str:
    """Return the hex SHA-256 digest of a file, read in chunks of ``chunk_bytes`` bytes.

    Memory use stays at one chunk whatever the file size. Raises ``FileNotFoundError`` if
    the file does not exist.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
