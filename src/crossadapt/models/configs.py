"""Pydantic configs of the model zoo's architectures; importing them does not import torch."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt

# Standard deviation of the normal initialisation of every embedding row (PAD rows stay
# zero). 1e-4 is FuxiCTR's default, so comparisons with it start from the same scale.
# Adam's per-parameter step size makes the small scale harmless for training.
DEFAULT_INIT_STD = 1e-4


class ModelConfig(BaseModel):
    """Options shared by every architecture: the MLP tower and the initialisation.

    `hidden_units` is the width of each hidden layer of the deep (MLP) part. An empty
    list removes that part in DCN, DCN-V2 and AutoInt. In DNN, Wide&Deep, DeepFM,
    xDeepFM and FiBiNET the deep part becomes one linear layer, and a FinalMLP stream
    passes its gated input through unchanged.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    hidden_units: list[PositiveInt] = Field(default_factory=lambda: [128, 64])
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    batch_norm: bool = False
    embedding_init_std: float = Field(default=DEFAULT_INIT_STD, gt=0.0)
    # "torch": PyTorch's default init of nn.Linear, and N(0, embedding_init_std) numeric
    # rows. "xavier": FuxiCTR's scheme, see `apply_xavier_init`.
    weight_init: Literal["torch", "xavier"] = "torch"
    # Categorical and multi-valued tables emit sparse row gradients, and make_optimizer
    # then builds SparseAwareAdam (lazy Adam): a step touches only the batch's rows.
    sparse_gradients: bool = False


class DNNConfig(ModelConfig):
    """Embedding + MLP: no option beyond the shared ones."""


class WideDeepConfig(ModelConfig):
    """Wide&Deep: no option beyond the shared ones."""


class DeepFMConfig(ModelConfig):
    """DeepFM: no option beyond the shared ones."""


class DCNConfig(ModelConfig):
    """DCN: number of cross layers."""

    num_cross_layers: PositiveInt = 3


class DCNv2Config(ModelConfig):
    """DCN-V2: cross layers, optional low rank, and how the cross and deep parts combine.

    `parallel`: the logit reads `[cross(x0), mlp(x0)]`. `stacked`: it reads
    `mlp(cross(x0))`. `low_rank: null` uses full-rank `D x D` cross matrices.
    """

    num_cross_layers: PositiveInt = 3
    low_rank: PositiveInt | None = None
    model_structure: Literal["parallel", "stacked"] = "parallel"


class XDeepFMConfig(ModelConfig):
    """xDeepFM: number of feature maps in each CIN layer."""

    cin_layer_units: list[PositiveInt] = Field(default_factory=lambda: [16, 16, 16], min_length=1)


class AutoIntConfig(ModelConfig):
    """AutoInt: interacting layers; with non-empty `hidden_units` this is AutoInt+."""

    attention_layers: PositiveInt = 3
    num_heads: PositiveInt = 2
    attention_dim: PositiveInt = 16
    use_residual: bool = True
    use_scale: bool = False


class FiBiNETConfig(ModelConfig):
    """FiBiNET: SENET reduction ratio and how the bilinear matrices are shared."""

    reduction_ratio: float = Field(default=3.0, ge=1.0)
    bilinear_type: Literal["field_all", "field_each", "field_interaction"] = "field_interaction"


class FinalMLPConfig(ModelConfig):
    """FinalMLP: the second stream, the feature gates and the fusion heads.

    `hidden_units` is the first stream, `second_hidden_units` the second. A gate's
    context is the concatenated embeddings of the listed fields, or a learned vector
    when the list is empty. Both streams' output widths must be divisible by
    `fusion_heads`.
    """

    second_hidden_units: list[PositiveInt] = Field(default_factory=lambda: [128, 64])
    use_feature_gating: bool = True
    gate_hidden_units: list[PositiveInt] = Field(default_factory=lambda: [64])
    first_context_fields: list[str] = Field(default_factory=list)
    second_context_fields: list[str] = Field(default_factory=list)
    fusion_heads: PositiveInt = 1
