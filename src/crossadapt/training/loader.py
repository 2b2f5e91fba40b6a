"""Mini-batches of an EncodedFrame as ``Batch`` tensors, in time order or shuffled with a seed."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

    from crossadapt.data.encoding import EncodedFrame
    from crossadapt.models.batch import Batch


def frame_rows(frame: EncodedFrame) -> int:
    """Return the number of rows of an encoded frame."""
    return int(frame.label.shape[0])


def batch_count(rows: int, batch_size: int, drop_last: bool = False) -> int:
    """Return how many batches ``rows`` rows make with ``batch_size`` rows each."""
    if drop_last:
        return rows // batch_size
    return math.ceil(rows / batch_size)


class BatchLoader:
    """Iterable over the batches of an encoded frame, re-iterable once per epoch.

    In time order (``shuffle=False``) batches are consecutive row slices of the frame, so
    the stream is replayed as it happened. With ``shuffle=True`` every iteration draws a
    new permutation from one ``numpy.random.Generator`` seeded with ``seed``: the sequence
    of epochs is the same for the same seed.

    Example::

        loader = BatchLoader(frame, batch_size=1024)
        for batch in loader:
            logits = model(batch)  # (B,)

    Batches are built with ``Batch.from_encoded``: in time order on the CPU they share
    memory with the frame's arrays when the dtypes already match.
    """

    def __init__(
        self,
        frame: EncodedFrame,
        batch_size: int,
        *,
        shuffle: bool = False,
        seed: int = 0,
        indices: np.ndarray | None = None,
        drop_last: bool = False,
        device: str | torch.device = "cpu",
    ) -> None:
        """Set up batches over ``frame``, or over its rows ``indices`` (in that order)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.frame = frame
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.device = device
        self._rng = np.random.default_rng(seed)

    @property
    def rows(self) -> int:
        """Number of rows one epoch covers (before ``drop_last``)."""
        return frame_rows(self.frame) if self.indices is None else int(self.indices.size)

    def __len__(self) -> int:
        return batch_count(self.rows, self.batch_size, self.drop_last)

    def __iter__(self) -> Iterator[Batch]:
        from crossadapt.models.batch import Batch

        rows = self.rows
        if self.shuffle:
            order = self._rng.permutation(rows)
            if self.indices is not None:
                order = self.indices[order]
        else:
            order = self.indices

        for batch_index in range(len(self)):
            start = batch_index * self.batch_size
            stop = min(start + self.batch_size, rows)
            rows_of_batch = slice(start, stop) if order is None else order[start:stop]
            yield Batch.from_encoded(self.frame, rows_of_batch, device=self.device)
