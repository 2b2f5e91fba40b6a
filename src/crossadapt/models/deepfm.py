"""DeepFM: a factorization machine and an MLP that share the field embeddings."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.configs import DeepFMConfig
from crossadapt.models.embedding import FirstOrderLinear
from crossadapt.models.layers import MLP, FactorizationMachine

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

__all__ = ["DeepFM", "DeepFMConfig"]


class DeepFM(CTRModel):
    """DeepFM: `logit = w_0 + sum_f w_f(x_f) + sum_{i<j} <e_i, e_j> + MLP([e_1; ...; e_F])`.

    The FM term needs one embedding dim for all fields.
    Source: H. Guo, R. Tang, Y. Ye, Z. Li, X. He, "DeepFM: A Factorization-Machine
    based Neural Network for CTR Prediction", IJCAI 2017.
    Input: a `Batch` of B rows. Output: logits `(B,)`.

    Example:
        >>> model = DeepFM(schema.with_embedding_dims(16), DeepFMConfig())
        >>> logits = model(batch)
        >>> logits.shape
        torch.Size([B])
    """

    arch: ClassVar[str] = "deepfm"
    needs_uniform_dim: ClassVar[bool] = True
    config_class: ClassVar[type[DeepFMConfig]] = DeepFMConfig

    def __init__(self, schema: FeatureSchema, config: DeepFMConfig | None = None) -> None:
        super().__init__(schema, config)
        self.linear = FirstOrderLinear(
            schema,
            init_std=self.config.embedding_init_std,
            sparse=self.config.sparse_gradients,
        )
        self.fm = FactorizationMachine()
        self.mlp = MLP(
            self.embedding.output_dim,
            self.config.hidden_units,
            dropout=self.config.dropout,
            batch_norm=self.config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the logits `(B,)`."""
        stacked = self.embedding.stacked(batch)  # (B, F, d)
        fm = self.fm(stacked)  # (B,)
        deep = self.mlp(stacked.flatten(1)).squeeze(1)  # (B,)
        return self.linear(batch) + fm + deep
