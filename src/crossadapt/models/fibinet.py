"""FiBiNET: SENET field importance and bilinear pairwise interactions fed to an MLP."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from crossadapt.errors import SchemaError
from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.configs import FiBiNETConfig
from crossadapt.models.embedding import FirstOrderLinear
from crossadapt.models.layers import MLP, BilinearInteraction, SqueezeExcitation

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

__all__ = ["FiBiNET", "FiBiNETConfig"]


class FiBiNET(CTRModel):
    """FiBiNET: `logit = w_0 + sum_f w_f(x_f) + MLP([p; q])`.

    `p = Bilinear(E)` and `q = Bilinear(SENET(E))`, each the `(F (F - 1) / 2, d)`
    products `(v_i W) * v_j`. SENET re-weights fields by
    `relu(W_2 relu(W_1 mean_d(E)))`. Bilinear products need one embedding dim for all
    fields. The two bilinear layers do not share weights.
    Source: T. Huang, Z. Zhang, J. Zhang, "FiBiNET: Combining Feature Importance and
    Bilinear feature Interaction for Click-Through Rate Prediction", RecSys 2019.
    Input: a `Batch` of B rows. Output: logits `(B,)`.

    Example:
        >>> model = FiBiNET(schema.with_embedding_dims(16), FiBiNETConfig(reduction_ratio=3))
        >>> logits = model(batch)
        >>> logits.shape
        torch.Size([B])
    """

    arch: ClassVar[str] = "fibinet"
    needs_uniform_dim: ClassVar[bool] = True
    config_class: ClassVar[type[FiBiNETConfig]] = FiBiNETConfig

    def __init__(self, schema: FeatureSchema, config: FiBiNETConfig | None = None) -> None:
        super().__init__(schema, config)
        dim = self.embedding.require_uniform_dim(self.arch)
        num_fields = self.embedding.num_fields
        if num_fields < 2:
            raise SchemaError(
                f"architecture '{self.arch}' needs at least two embedded fields to form "
                f"bilinear pairs, but the schema has {num_fields} "
                f"({', '.join(self.embedding.field_names)}); add fields or use 'dnn'"
            )
        self.linear = FirstOrderLinear(
            schema,
            init_std=self.config.embedding_init_std,
            sparse=self.config.sparse_gradients,
        )
        self.senet = SqueezeExcitation(num_fields, self.config.reduction_ratio)
        self.bilinear = BilinearInteraction(num_fields, dim, self.config.bilinear_type)
        self.senet_bilinear = BilinearInteraction(num_fields, dim, self.config.bilinear_type)
        num_pairs = num_fields * (num_fields - 1) // 2
        self.mlp = MLP(
            2 * num_pairs * dim,
            self.config.hidden_units,
            dropout=self.config.dropout,
            batch_norm=self.config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the logits `(B,)`."""
        stacked = self.embedding.stacked(batch)  # (B, F, d)
        plain = self.bilinear(stacked)  # (B, P, d)
        reweighted = self.senet_bilinear(self.senet(stacked))  # (B, P, d)
        combined = torch.cat([plain, reweighted], dim=1).flatten(1)  # (B, 2 P d)
        return self.linear(batch) + self.mlp(combined).squeeze(1)  # (B,)
