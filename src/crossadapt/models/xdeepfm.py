"""xDeepFM: a compressed interaction network (CIN), a linear term and an MLP."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.configs import XDeepFMConfig
from crossadapt.models.embedding import FirstOrderLinear
from crossadapt.models.layers import MLP, CompressedInteractionNetwork

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

__all__ = ["XDeepFM", "XDeepFMConfig"]


class XDeepFM(CTRModel):
    """xDeepFM: `logit = w_0 + sum_f w_f(x_f) + w_c^T p^+ + MLP([e_1; ...; e_F])`.

    `p^+` concatenates the sum-pooled feature maps of every CIN layer,
    `X^k_h = sum_i sum_j W^{k,h}_{ij} (X^{k-1}_i * X^0_j)`. CIN multiplies field
    embeddings element-wise, so all fields need one embedding dim.
    Source: J. Lian, X. Zhou, F. Zhang, Z. Chen, X. Xie, G. Sun, "xDeepFM: Combining
    Explicit and Implicit Feature Interactions for Recommender Systems", KDD 2018.
    Input: a `Batch` of B rows. Output: logits `(B,)`.

    Example:
        >>> model = XDeepFM(schema.with_embedding_dims(16), XDeepFMConfig(cin_layer_units=[16, 16]))
        >>> logits = model(batch)
        >>> logits.shape
        torch.Size([B])
    """

    arch: ClassVar[str] = "xdeepfm"
    needs_uniform_dim: ClassVar[bool] = True
    config_class: ClassVar[type[XDeepFMConfig]] = XDeepFMConfig

    def __init__(self, schema: FeatureSchema, config: XDeepFMConfig | None = None) -> None:
        super().__init__(schema, config)
        self.linear = FirstOrderLinear(
            schema,
            init_std=self.config.embedding_init_std,
            sparse=self.config.sparse_gradients,
        )
        self.cin = CompressedInteractionNetwork(
            self.embedding.num_fields, self.config.cin_layer_units
        )
        self.cin_output = nn.Linear(self.cin.output_dim, 1)
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
        cin = self.cin_output(self.cin(stacked)).squeeze(1)  # (B,)
        deep = self.mlp(stacked.flatten(1)).squeeze(1)  # (B,)
        return self.linear(batch) + cin + deep
