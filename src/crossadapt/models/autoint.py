"""AutoInt: multi-head self-attention over the fields, with an optional MLP (AutoInt+)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.configs import AutoIntConfig
from crossadapt.models.layers import MLP, InteractingLayer

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

__all__ = ["AutoInt", "AutoIntConfig"]


class AutoInt(CTRModel):
    """AutoInt(+): `logit = w^T flatten(A_L(...A_1(E))) + MLP([e_1; ...; e_F]) + b`.

    Each interacting layer `A_l` is `relu(concat_h softmax(Q_h K_h^T) V_h + E W_res)`
    over the field axis. The MLP term (AutoInt+) is dropped when `hidden_units` is
    empty. Attention mixes field embeddings, so all fields need one embedding dim.
    Source: W. Song, C. Shi, Z. Xiao, Z. Duan, Y. Xu, M. Zhang, J. Tang, "AutoInt:
    Automatic Feature Interaction Learning via Self-Attentive Neural Networks", CIKM 2019.
    Input: a `Batch` of B rows. Output: logits `(B,)`.

    Example:
        >>> model = AutoInt(schema.with_embedding_dims(16), AutoIntConfig(num_heads=2))
        >>> logits = model(batch)
        >>> logits.shape
        torch.Size([B])
    """

    arch: ClassVar[str] = "autoint"
    needs_uniform_dim: ClassVar[bool] = True
    config_class: ClassVar[type[AutoIntConfig]] = AutoIntConfig

    def __init__(self, schema: FeatureSchema, config: AutoIntConfig | None = None) -> None:
        super().__init__(schema, config)
        width = self.embedding.require_uniform_dim(self.arch)
        layers: list[InteractingLayer] = []
        for _ in range(self.config.attention_layers):
            layer = InteractingLayer(
                width,
                attention_dim=self.config.attention_dim,
                num_heads=self.config.num_heads,
                use_residual=self.config.use_residual,
                use_scale=self.config.use_scale,
            )
            layers.append(layer)
            width = layer.output_dim
        self.attention = nn.Sequential(*layers)
        self.attention_output = nn.Linear(self.embedding.num_fields * width, 1)
        self.mlp = (
            MLP(
                self.embedding.output_dim,
                self.config.hidden_units,
                dropout=self.config.dropout,
                batch_norm=self.config.batch_norm,
                output_dim=1,
            )
            if self.config.hidden_units
            else None
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the logits `(B,)`."""
        stacked = self.embedding.stacked(batch)  # (B, F, d)
        attended = self.attention(stacked)  # (B, F, H * d')
        logits = self.attention_output(attended.flatten(1)).squeeze(1)  # (B,)
        if self.mlp is not None:
            logits = logits + self.mlp(stacked.flatten(1)).squeeze(1)
        return logits
