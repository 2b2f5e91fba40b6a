"""Base class of every CTR model: one shared FeatureEmbedding plus an architecture's dense part."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import torch
from torch import nn

from crossadapt.models.batch import Batch
from crossadapt.models.configs import ModelConfig
from crossadapt.models.embedding import FeatureEmbedding

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema


class CTRModel(nn.Module):
    """A click-through-rate model that maps a `Batch` to logits `(B,)`.

    Subclasses set `arch` (the registry name), `config_class`, and
    `needs_uniform_dim` (True for FM, CIN, self-attention and bilinear interactions,
    which combine field embeddings element-wise and so need one dim for all fields).
    Parameters split in two groups for the distillation steps and the optimizers: the
    parameters of every `FeatureEmbedding` inside the model (`embedding_parameters`)
    and all others (`dense_parameters`).
    """

    arch: ClassVar[str]
    needs_uniform_dim: ClassVar[bool] = False
    config_class: ClassVar[type[ModelConfig]] = ModelConfig

    def __init__(self, schema: FeatureSchema, config: ModelConfig | None = None) -> None:
        super().__init__()
        self.config = config if config is not None else self.config_class()
        self.embedding = FeatureEmbedding(schema, init_std=self.config.embedding_init_std)
        if self.needs_uniform_dim:
            self.embedding.require_uniform_dim(self.arch)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the logits `(B,)` of the batch's rows."""
        raise NotImplementedError

    def embedding_parameters(self) -> list[nn.Parameter]:
        """Return the parameters of every `FeatureEmbedding` in the model (tables only)."""
        parameters: dict[int, nn.Parameter] = {}
        for module in self.modules():
            if isinstance(module, FeatureEmbedding):
                for parameter in module.parameters():
                    parameters[id(parameter)] = parameter
        return list(parameters.values())

    def dense_parameters(self) -> list[nn.Parameter]:
        """Return every parameter that `embedding_parameters` does not return."""
        embedding_ids = {id(parameter) for parameter in self.embedding_parameters()}
        return [parameter for parameter in self.parameters() if id(parameter) not in embedding_ids]
