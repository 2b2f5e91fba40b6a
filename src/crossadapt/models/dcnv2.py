"""DCN-V2: matrix-valued cross layers (full or low rank) combined with an MLP."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.configs import DCNv2Config
from crossadapt.models.layers import MLP, CrossNetV2

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

__all__ = ["DCNv2", "DCNv2Config"]


class DCNv2(CTRModel):
    """DCN-V2: cross layers `x_{l+1} = x_0 * (W_l x_l + b_l) + x_l` with an MLP.

    `parallel`: `logit = w^T [x_L; MLP(x_0)] + b`. `stacked`: `logit = w^T MLP(x_L) + b`.
    With `low_rank = r`, `W_l = U_l V_l^T`. `x_0 = [e_1; ...; e_F]`, and field dims may
    differ. With empty `hidden_units` the logit reads the cross network only.
    Source: R. Wang, R. Shivanna, D. Cheng, S. Jain, D. Lin, L. Hong, E. Chi, "DCN V2:
    Improved Deep & Cross Network and Practical Lessons for Web-scale Learning to Rank
    Systems", WWW 2021.
    Input: a `Batch` of B rows. Output: logits `(B,)`.

    Example:
        >>> model = DCNv2(schema, DCNv2Config(low_rank=32, model_structure="stacked"))
        >>> logits = model(batch)
        >>> logits.shape
        torch.Size([B])
    """

    arch: ClassVar[str] = "dcnv2"
    needs_uniform_dim: ClassVar[bool] = False
    config_class: ClassVar[type[DCNv2Config]] = DCNv2Config

    def __init__(self, schema: FeatureSchema, config: DCNv2Config | None = None) -> None:
        super().__init__(schema, config)
        input_dim = self.embedding.output_dim
        self.cross = CrossNetV2(input_dim, self.config.num_cross_layers, self.config.low_rank)
        self.mlp = MLP(
            input_dim,
            self.config.hidden_units,
            dropout=self.config.dropout,
            batch_norm=self.config.batch_norm,
        )
        has_deep = bool(self.config.hidden_units)
        if self.config.model_structure == "parallel" and has_deep:
            output_dim = input_dim + self.mlp.output_dim
        elif has_deep:
            output_dim = self.mlp.output_dim
        else:
            output_dim = input_dim
        self.output = nn.Linear(output_dim, 1)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the logits `(B,)`."""
        x0 = self.embedding.flat(batch)  # (B, D)
        crossed = self.cross(x0)  # (B, D)
        if not self.config.hidden_units:
            hidden = crossed
        elif self.config.model_structure == "parallel":
            hidden = torch.cat([crossed, self.mlp(x0)], dim=1)  # (B, D + H)
        else:
            hidden = self.mlp(crossed)  # (B, H)
        return self.output(hidden).squeeze(1)  # (B,)
