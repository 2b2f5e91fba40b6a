"""DNN: field embeddings concatenated and fed to an MLP, the plain deep CTR baseline."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.configs import DNNConfig
from crossadapt.models.layers import MLP

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

__all__ = ["DNN", "DNNConfig"]


class DNN(CTRModel):
    """Embedding + MLP: `logit = w^T MLP([e_1; ...; e_F]) + b`.

    This is the embedding-and-MLP model of W. Zhang, T. Du, J. Wang, "Deep Learning
    over Multi-field Categorical Data", ECIR 2016, with randomly initialised
    embeddings instead of FM pre-training. Field dims may differ.
    Input: a `Batch` of B rows. Output: logits `(B,)`.

    Example:
        >>> model = DNN(schema, DNNConfig(hidden_units=[128, 64]))
        >>> logits = model(batch)
        >>> logits.shape
        torch.Size([B])
    """

    arch: ClassVar[str] = "dnn"
    needs_uniform_dim: ClassVar[bool] = False
    config_class: ClassVar[type[DNNConfig]] = DNNConfig

    def __init__(self, schema: FeatureSchema, config: DNNConfig | None = None) -> None:
        super().__init__(schema, config)
        self.mlp = MLP(
            self.embedding.output_dim,
            self.config.hidden_units,
            dropout=self.config.dropout,
            batch_norm=self.config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the logits `(B,)`."""
        flat = self.embedding.flat(batch)  # (B, sum d_f)
        return self.mlp(flat).squeeze(1)  # (B,)
