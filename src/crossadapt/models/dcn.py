"""DCN: a cross network of explicit bounded-degree interactions beside an MLP."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.configs import DCNConfig
from crossadapt.models.layers import MLP, CrossNet

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

__all__ = ["DCN", "DCNConfig"]


class DCN(CTRModel):
    """DCN: `logit = w^T [x_L; MLP(x_0)] + b` with `x_{l+1} = x_0 (x_l^T w_l) + b_l + x_l`.

    `x_0 = [e_1; ...; e_F]`, and field dims may differ. With empty `hidden_units` the
    logit reads the cross network only.
    Source: R. Wang, B. Fu, G. Fu, M. Wang, "Deep & Cross Network for Ad Click
    Predictions", ADKDD 2017.
    Input: a `Batch` of B rows. Output: logits `(B,)`.

    Example:
        >>> model = DCN(schema, DCNConfig(num_cross_layers=3))
        >>> logits = model(batch)
        >>> logits.shape
        torch.Size([B])
    """

    arch: ClassVar[str] = "dcn"
    needs_uniform_dim: ClassVar[bool] = False
    config_class: ClassVar[type[DCNConfig]] = DCNConfig

    def __init__(self, schema: FeatureSchema, config: DCNConfig | None = None) -> None:
        super().__init__(schema, config)
        input_dim = self.embedding.output_dim
        self.cross = CrossNet(input_dim, self.config.num_cross_layers)
        self.mlp = MLP(
            input_dim,
            self.config.hidden_units,
            dropout=self.config.dropout,
            batch_norm=self.config.batch_norm,
        )
        deep_dim = self.mlp.output_dim if self.config.hidden_units else 0
        self.output = nn.Linear(input_dim + deep_dim, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the logits `(B,)`."""
        x0 = self.embedding.flat(batch)  # (B, D)
        parts = [self.cross(x0)]  # (B, D)
        if self.config.hidden_units:
            parts.append(self.mlp(x0))  # (B, H)
        return self.output(torch.cat(parts, dim=1)).squeeze(1)  # (B,)
