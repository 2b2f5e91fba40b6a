"""Wide&Deep: a first-order (wide) term plus an MLP over the field embeddings (deep)."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.configs import WideDeepConfig
from crossadapt.models.embedding import FirstOrderLinear
from crossadapt.models.layers import MLP

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

__all__ = ["WideDeep", "WideDeepConfig"]


class WideDeep(CTRModel):
    """Wide&Deep: `logit = w_0 + sum_f w_f(x_f) + MLP([e_1; ...; e_F])`.

    The wide part is one weight per feature value: a one-dim "linear" embedding per
    field, counted among the embedding parameters. The hand-crafted cross-product
    features of the paper's wide part are not built. Field dims may differ.
    Source: H.-T. Cheng et al., "Wide & Deep Learning for Recommender Systems",
    DLRS workshop at RecSys 2016.
    Input: a `Batch` of B rows. Output: logits `(B,)`.

    Example:
        >>> model = WideDeep(schema, WideDeepConfig())
        >>> logits = model(batch)
        >>> logits.shape
        torch.Size([B])
    """

    arch: ClassVar[str] = "wide_deep"
    needs_uniform_dim: ClassVar[bool] = False
    config_class: ClassVar[type[WideDeepConfig]] = WideDeepConfig

    def __init__(self, schema: FeatureSchema, config: WideDeepConfig | None = None) -> None:
        super().__init__(schema, config)
        self.linear = FirstOrderLinear(
            schema,
            init_std=self.config.embedding_init_std,
            sparse=self.config.sparse_gradients,
        )
        self.mlp = MLP(
            self.embedding.output_dim,
            self.config.hidden_units,
            dropout=self.config.dropout,
            batch_norm=self.config.batch_norm,
            output_dim=1,
        )

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the logits `(B,)`."""
        wide = self.linear(batch)  # (B,)
        deep = self.mlp(self.embedding.flat(batch)).squeeze(1)  # (B,)
        return wide + deep
