"""One mini-batch of encoded rows as tensors, the input of every CTR model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

if TYPE_CHECKING:
    from crossadapt.data.encoding import EncodedFrame


def _as_tensor(array: np.ndarray, dtype: np.dtype[Any], indices: np.ndarray | None) -> torch.Tensor:
    """Wrap `array` (or its rows at `indices`) in a tensor, without a copy when possible.

    `torch.from_numpy` shares memory when the array already has `dtype` and is
    C-contiguous. Selecting rows with `indices` always copies (numpy fancy indexing).
    """
    if indices is not None:
        array = array[indices]
    array = np.ascontiguousarray(array, dtype=dtype)
    return torch.from_numpy(array)


class Batch(NamedTuple):
    """Encoded features and labels of B rows.

    categorical: (B, F_c) int64 row indices of categorical and bucket fields, schema order.
    multi_valued: (B, F_m, L) int64 token indices, right-padded with PAD = 0.
    numeric: (B, F_n) float32 log-transformed values of numeric `log` fields.
    label: (B,) float32, 0.0 or 1.0.
    """

    categorical: torch.Tensor
    multi_valued: torch.Tensor
    numeric: torch.Tensor
    label: torch.Tensor

    @classmethod
    def from_encoded(
        cls,
        encoded: EncodedFrame,
        indices: np.ndarray | slice | None = None,
        device: torch.device | str = "cpu",
    ) -> Batch:
        """Build a batch from an `EncodedFrame`, optionally from the rows at `indices`.

        With `indices=None` or a slice and a CPU device, the tensors share memory with
        the frame's arrays (no copy). An index array copies the selected rows once.
        """
        row_indices: np.ndarray | None = None
        if isinstance(indices, slice):
            encoded_views = (
                encoded.categorical[indices],
                encoded.multi_valued[indices],
                encoded.numeric[indices],
                encoded.label[indices],
            )
        else:
            row_indices = None if indices is None else np.asarray(indices)
            encoded_views = (
                encoded.categorical,
                encoded.multi_valued,
                encoded.numeric,
                encoded.label,
            )

        categorical, multi_valued, numeric, label = encoded_views
        batch = cls(
            categorical=_as_tensor(categorical, np.dtype(np.int64), row_indices),
            multi_valued=_as_tensor(multi_valued, np.dtype(np.int64), row_indices),
            numeric=_as_tensor(numeric, np.dtype(np.float32), row_indices),
            label=_as_tensor(label, np.dtype(np.float32), row_indices),
        )
        return batch.to(device)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """Return the batch on `device` (the same tensors when they are already there)."""
        return Batch(*(tensor.to(device, non_blocking=non_blocking) for tensor in self))

    @property
    def num_rows(self) -> int:
        """Number of rows B."""
        return int(self.label.shape[0])
