"""FinalMLP: two gated MLP streams fused by a multi-head bilinear layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch

from crossadapt.errors import ParamsError
from crossadapt.models.base import CTRModel
from crossadapt.models.batch import Batch
from crossadapt.models.configs import FinalMLPConfig
from crossadapt.models.layers import MLP, FeatureGating, MultiHeadBilinearFusion

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

__all__ = ["FinalMLP", "FinalMLPConfig"]


class FinalMLP(CTRModel):
    """FinalMLP: `logit = sum_h (b_h + w1_h^T o1_h + w2_h^T o2_h + o1_h^T W3_h o2_h)`.

    `o_s = MLP_s(x * 2 sigmoid(MLP_gate_s(c_s)))` for the streams s = 1, 2, where
    `x = [e_1; ...; e_F]` and the gate context `c_s` is the embeddings of the
    configured context fields or a learned vector. The streams are split into
    `fusion_heads` heads h. Field dims may differ.
    Source: K. Mao, J. Zhu, L. Su, G. Cai, Y. Li, Z. Dong, "FinalMLP: An Enhanced
    Two-Stream MLP Model for CTR Prediction", AAAI 2023.
    Input: a `Batch` of B rows. Output: logits `(B,)`.

    Example:
        >>> model = FinalMLP(schema, FinalMLPConfig(first_context_fields=["user_id"]))
        >>> logits = model(batch)
        >>> logits.shape
        torch.Size([B])
    """

    arch: ClassVar[str] = "finalmlp"
    needs_uniform_dim: ClassVar[bool] = False
    config_class: ClassVar[type[FinalMLPConfig]] = FinalMLPConfig

    def __init__(self, schema: FeatureSchema, config: FinalMLPConfig | None = None) -> None:
        super().__init__(schema, config)
        config = self.config
        input_dim = self.embedding.output_dim
        self.first_context = self._field_positions("first_context_fields")
        self.second_context = self._field_positions("second_context_fields")

        self.first_gate = self.second_gate = None
        if config.use_feature_gating:
            self.first_gate = FeatureGating(
                input_dim, config.gate_hidden_units, self._context_dim(self.first_context)
            )
            self.second_gate = FeatureGating(
                input_dim, config.gate_hidden_units, self._context_dim(self.second_context)
            )

        stream_options = {"dropout": config.dropout, "batch_norm": config.batch_norm}
        self.first_stream = MLP(input_dim, config.hidden_units, **stream_options)
        self.second_stream = MLP(input_dim, config.second_hidden_units, **stream_options)

        first_dim, second_dim = self.first_stream.output_dim, self.second_stream.output_dim
        if first_dim % config.fusion_heads or second_dim % config.fusion_heads:
            raise ParamsError(
                f"finalmlp: fusion_heads={config.fusion_heads} must divide both stream "
                f"widths ({first_dim} from hidden_units, {second_dim} from "
                "second_hidden_units); change fusion_heads or the last hidden width"
            )
        self.fusion = MultiHeadBilinearFusion(first_dim, second_dim, config.fusion_heads)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the logits `(B,)`."""
        embeddings = self.embedding(batch)  # F tensors (B, d_f)
        flat = torch.cat(embeddings, dim=1)  # (B, D)
        first_input = second_input = flat
        if self.first_gate is not None and self.second_gate is not None:
            first_input = self.first_gate(flat, self._context(embeddings, self.first_context))
            second_input = self.second_gate(flat, self._context(embeddings, self.second_context))
        first = self.first_stream(first_input)  # (B, D1)
        second = self.second_stream(second_input)  # (B, D2)
        return self.fusion(first, second)  # (B,)

    def _field_positions(self, key: str) -> list[int]:
        names: list[str] = getattr(self.config, key)
        unknown = [name for name in names if name not in self.embedding.field_names]
        if unknown:
            raise ParamsError(
                f"finalmlp: {key} lists unknown fields {unknown}; "
                f"use names from the schema: {', '.join(self.embedding.field_names)}"
            )
        return [self.embedding.field_names.index(name) for name in names]

    def _context_dim(self, positions: list[int]) -> int | None:
        return sum(self.embedding.dims[i] for i in positions) if positions else None

    @staticmethod
    def _context(embeddings: list[torch.Tensor], positions: list[int]) -> torch.Tensor | None:
        if not positions:
            return None
        return torch.cat([embeddings[i] for i in positions], dim=1)  # (B, context_dim)
