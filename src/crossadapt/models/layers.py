"""Building blocks of the CTR architectures: MLP and the feature-interaction layers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class MLP(nn.Module):
    """Fully connected ReLU tower: `h_{l+1} = dropout(relu(bn(W_l h_l + b_l)))`.

    Args:
        input_dim: width of the input `(B, input_dim)`.
        hidden_units: width of each hidden layer. An empty list gives the identity.
        dropout: dropout probability after each hidden layer.
        batch_norm: apply BatchNorm1d before each activation.
        output_dim: if set, add a final linear layer to this width (no activation).

    Example:
        >>> mlp = MLP(64, [128, 64], output_dim=1)
        >>> mlp(torch.randn(32, 64)).shape
        torch.Size([32, 1])
    """

    def __init__(
        self,
        input_dim: int,
        hidden_units: Sequence[int],
        dropout: float = 0.0,
        batch_norm: bool = False,
        output_dim: int | None = None,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for units in hidden_units:
            layers.append(nn.Linear(width, units))
            if batch_norm:
                layers.append(nn.BatchNorm1d(units))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = units
        if output_dim is not None:
            layers.append(nn.Linear(width, output_dim))
            width = output_dim
        self.layers = nn.Sequential(*layers)
        self.output_dim = width

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """Map `(B, input_dim)` to `(B, output_dim)`."""
        return self.layers(inputs)


class FactorizationMachine(nn.Module):
    """Second-order FM term `sum_{i<j} <v_i, v_j> = 0.5 * sum_k ((sum_i v_ik)^2 - sum_i v_ik^2)`.

    Source: S. Rendle, "Factorization Machines", ICDM 2010 (the O(F d) identity).
    Input `(B, F, d)`, output `(B,)`.

    Example:
        >>> fm = FactorizationMachine()
        >>> fm(torch.randn(32, 10, 8)).shape
        torch.Size([32])
    """

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Return the pairwise-interaction logits of `(B, F, d)` embeddings."""
        square_of_sum = embeddings.sum(dim=1).pow(2)  # (B, d)
        sum_of_squares = embeddings.pow(2).sum(dim=1)  # (B, d)
        return 0.5 * (square_of_sum - sum_of_squares).sum(dim=1)  # (B,)


class CrossNet(nn.Module):
    """DCN cross network: `x_{l+1} = x_0 (x_l^T w_l) + b_l + x_l`.

    Source: R. Wang, B. Fu, G. Fu, M. Wang, "Deep & Cross Network for Ad Click
    Predictions", ADKDD 2017. Input and output `(B, D)`.

    Example:
        >>> cross = CrossNet(64, num_layers=3)
        >>> cross(torch.randn(32, 64)).shape
        torch.Size([32, 64])
    """

    def __init__(self, input_dim: int, num_layers: int) -> None:
        super().__init__()
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(input_dim).normal_(std=input_dim**-0.5))
            for _ in range(num_layers)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(input_dim)) for _ in range(num_layers)
        )

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """Apply the cross layers to `(B, D)`."""
        x = x0
        for weight, bias in zip(self.weights, self.biases, strict=True):
            projection = x @ weight  # (B,)
            x = x0 * projection.unsqueeze(1) + bias + x  # (B, D)
        return x


class CrossNetV2(nn.Module):
    """DCN-V2 cross network: `x_{l+1} = x_0 * (W_l x_l + b_l) + x_l`.

    With `low_rank = r`, `W_l = U_l V_l^T` (`U_l, V_l` of shape `D x r`), which costs
    O(D r) instead of O(D^2) per row. The paper's mixture of low-rank experts with a
    nonlinearity between `V^T` and `U` is not implemented.
    Source: R. Wang, R. Shivanna, D. Cheng, S. Jain, D. Lin, L. Hong, E. Chi, "DCN V2:
    Improved Deep & Cross Network and Practical Lessons for Web-scale Learning to Rank
    Systems", WWW 2021. Input and output `(B, D)`.

    Example:
        >>> cross = CrossNetV2(64, num_layers=3, low_rank=16)
        >>> cross(torch.randn(32, 64)).shape
        torch.Size([32, 64])
    """

    def __init__(self, input_dim: int, num_layers: int, low_rank: int | None = None) -> None:
        super().__init__()
        if low_rank is None:
            self.layers = nn.ModuleList(nn.Linear(input_dim, input_dim) for _ in range(num_layers))
        else:
            self.layers = nn.ModuleList(
                nn.Sequential(
                    nn.Linear(input_dim, low_rank, bias=False),  # V_l^T
                    nn.Linear(low_rank, input_dim),  # U_l, b_l
                )
                for _ in range(num_layers)
            )

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        """Apply the cross layers to `(B, D)`."""
        x = x0
        for layer in self.layers:
            x = x0 * layer(x) + x  # (B, D)
        return x


class CompressedInteractionNetwork(nn.Module):
    """CIN of xDeepFM: `X^k_h = sum_i sum_j W^{k,h}_{ij} (X^{k-1}_i * X^0_j)`, sum-pooled.

    Each layer takes the outer product of the previous feature maps `(B, H_{k-1}, d)`
    and the field embeddings `(B, F, d)` along the field axes, compresses the
    `H_{k-1} * F` maps to `H_k` with a 1x1 convolution, and sum-pools over d.
    Source: J. Lian, X. Zhou, F. Zhang, Z. Chen, X. Xie, G. Sun, "xDeepFM: Combining
    Explicit and Implicit Feature Interactions for Recommender Systems", KDD 2018.
    Input `(B, F, d)`, output `(B, sum_k H_k)`.

    Example:
        >>> cin = CompressedInteractionNetwork(num_fields=10, layer_units=[16, 16])
        >>> cin(torch.randn(32, 10, 8)).shape
        torch.Size([32, 32])
    """

    def __init__(self, num_fields: int, layer_units: Sequence[int]) -> None:
        super().__init__()
        self.convolutions = nn.ModuleList()
        previous = num_fields
        for units in layer_units:
            self.convolutions.append(nn.Conv1d(previous * num_fields, units, kernel_size=1))
            previous = units
        self.output_dim = sum(layer_units)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Return the sum-pooled feature maps of all CIN layers."""
        batch_size, _, dim = embeddings.shape
        hidden = embeddings
        pooled: list[torch.Tensor] = []
        for convolution in self.convolutions:
            outer = hidden.unsqueeze(2) * embeddings.unsqueeze(1)  # (B, H, F, d)
            outer = outer.reshape(batch_size, -1, dim)  # (B, H * F, d)
            hidden = torch.relu(convolution(outer))  # (B, H_k, d)
            pooled.append(hidden.sum(dim=2))  # (B, H_k)
        return torch.cat(pooled, dim=1)  # (B, sum_k H_k)


class InteractingLayer(nn.Module):
    """AutoInt multi-head self-attention over fields, with a projected residual.

    `head_h = softmax(Q_h K_h^T [/ sqrt(d')]) V_h` with `Q_h = E W_Q^h` (and K, V alike),
    `out = relu(concat_h(head_h) + E W_res)`.
    Source: W. Song, C. Shi, Z. Xiao, Z. Duan, Y. Xu, M. Zhang, J. Tang, "AutoInt:
    Automatic Feature Interaction Learning via Self-Attentive Neural Networks", CIKM
    2019. Input `(B, F, d_in)`, output `(B, F, num_heads * attention_dim)`.

    Example:
        >>> layer = InteractingLayer(8, attention_dim=16, num_heads=2)
        >>> layer(torch.randn(32, 10, 8)).shape
        torch.Size([32, 10, 32])
    """

    def __init__(
        self,
        input_dim: int,
        attention_dim: int,
        num_heads: int,
        use_residual: bool = True,
        use_scale: bool = False,
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attention_dim = attention_dim
        self.use_scale = use_scale
        self.output_dim = num_heads * attention_dim
        self.query_key_value = nn.Linear(input_dim, 3 * self.output_dim, bias=False)
        self.residual = nn.Linear(input_dim, self.output_dim, bias=False) if use_residual else None

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Attend over the field axis of `(B, F, d_in)`."""
        batch_size, num_fields, _ = embeddings.shape
        projected = self.query_key_value(embeddings)  # (B, F, 3 * H * d')
        projected = projected.view(batch_size, num_fields, 3, self.num_heads, self.attention_dim)
        query, key, value = projected.permute(2, 0, 3, 1, 4)  # each (B, H, F, d')
        scale = None if self.use_scale else 1.0
        heads = F.scaled_dot_product_attention(query, key, value, scale=scale)  # (B, H, F, d')
        output = heads.transpose(1, 2).reshape(batch_size, num_fields, -1)  # (B, F, H * d')
        if self.residual is not None:
            output = output + self.residual(embeddings)
        return torch.relu(output)


class SqueezeExcitation(nn.Module):
    """FiBiNET SENET layer: field weights `a = relu(W_2 relu(W_1 z))`, `z_f = mean_k e_fk`.

    Returns the re-weighted embeddings `v_f = a_f * e_f`.
    Source: T. Huang, Z. Zhang, J. Zhang, "FiBiNET: Combining Feature Importance and
    Bilinear feature Interaction for Click-Through Rate Prediction", RecSys 2019.
    Input and output `(B, F, d)`.

    Example:
        >>> senet = SqueezeExcitation(num_fields=10, reduction_ratio=3)
        >>> senet(torch.randn(32, 10, 8)).shape
        torch.Size([32, 10, 8])
    """

    def __init__(self, num_fields: int, reduction_ratio: float) -> None:
        super().__init__()
        reduced = max(1, int(num_fields / reduction_ratio))
        self.excitation = nn.Sequential(
            nn.Linear(num_fields, reduced, bias=False),
            nn.ReLU(),
            nn.Linear(reduced, num_fields, bias=False),
            nn.ReLU(),
        )

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Re-weight each field of `(B, F, d)` by its learned importance."""
        squeezed = embeddings.mean(dim=2)  # (B, F)
        weights = self.excitation(squeezed)  # (B, F)
        return embeddings * weights.unsqueeze(2)  # (B, F, d)


class BilinearInteraction(nn.Module):
    """FiBiNET bilinear interaction `p_ij = (v_i W) * v_j` for every field pair i < j.

    `bilinear_type` chooses how W is shared: `field_all` (one W), `field_each` (one
    `W_i` per left field) or `field_interaction` (one `W_ij` per pair).
    Source: FiBiNET (RecSys 2019, see SqueezeExcitation).
    Input `(B, F, d)`, output `(B, F (F - 1) / 2, d)`.

    Example:
        >>> bilinear = BilinearInteraction(10, 8, "field_interaction")
        >>> bilinear(torch.randn(32, 10, 8)).shape
        torch.Size([32, 45, 8])
    """

    def __init__(self, num_fields: int, dim: int, bilinear_type: str) -> None:
        super().__init__()
        left, right = torch.triu_indices(num_fields, num_fields, offset=1)
        self.register_buffer("left_index", left, persistent=False)
        self.register_buffer("right_index", right, persistent=False)
        self.bilinear_type = bilinear_type
        counts = {"field_all": 1, "field_each": num_fields, "field_interaction": len(left)}
        if bilinear_type not in counts:
            raise ValueError(
                f"bilinear_type must be one of {sorted(counts)}, not {bilinear_type!r}"
            )
        weight = torch.empty(counts[bilinear_type], dim, dim)
        nn.init.xavier_normal_(weight)
        self.weight = nn.Parameter(weight)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Return the pairwise bilinear interactions of `(B, F, d)` embeddings."""
        left = embeddings[:, self.left_index]  # (B, P, d)
        right = embeddings[:, self.right_index]  # (B, P, d)
        if self.bilinear_type == "field_all":
            projected = left @ self.weight[0]  # (B, P, d)
        elif self.bilinear_type == "field_each":
            per_field = torch.einsum("bfd,fde->bfe", embeddings, self.weight)  # (B, F, d)
            projected = per_field[:, self.left_index]  # (B, P, d)
        else:
            projected = torch.einsum("bpd,pde->bpe", left, self.weight)  # (B, P, d)
        return projected * right  # (B, P, d)


class FeatureGating(nn.Module):
    """FinalMLP feature selection: `x' = x * 2 sigmoid(MLP(context))`.

    The context is a learnable vector when no context width is given (the gate is then
    the same for every row), else the caller's `(B, context_dim)` tensor.
    Source: K. Mao, J. Zhu, L. Su, G. Cai, Y. Li, Z. Dong, "FinalMLP: An Enhanced
    Two-Stream MLP Model for CTR Prediction", AAAI 2023.
    Input `(B, D)`, output `(B, D)`.

    Example:
        >>> gate = FeatureGating(input_dim=64, hidden_units=[32])
        >>> gate(torch.randn(32, 64)).shape
        torch.Size([32, 64])
    """

    def __init__(
        self, input_dim: int, hidden_units: Sequence[int], context_dim: int | None = None
    ) -> None:
        super().__init__()
        self.learned_context = (
            nn.Parameter(torch.zeros(1, input_dim)) if context_dim is None else None
        )
        width = input_dim if context_dim is None else context_dim
        self.gate = MLP(width, hidden_units, output_dim=input_dim)

    def forward(self, inputs: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """Scale each input feature by its gate value in (0, 2)."""
        if self.learned_context is not None:
            context = self.learned_context.expand(inputs.shape[0], -1)  # (B, D)
        if context is None:
            raise ValueError("FeatureGating built with context_dim needs a context tensor")
        return inputs * 2 * torch.sigmoid(self.gate(context))  # (B, D)


class MultiHeadBilinearFusion(nn.Module):
    """FinalMLP fusion of two streams split into k heads.

    `logit = sum_h (b_h + w1_h^T o1_h + w2_h^T o2_h + o1_h^T W3_h o2_h)`.
    Source: FinalMLP (AAAI 2023, see FeatureGating).
    Inputs `(B, D1)` and `(B, D2)`, with D1 and D2 divisible by `num_heads`. Output `(B,)`.

    Example:
        >>> fusion = MultiHeadBilinearFusion(64, 32, num_heads=2)
        >>> fusion(torch.randn(8, 64), torch.randn(8, 32)).shape
        torch.Size([8])
    """

    def __init__(self, first_dim: int, second_dim: int, num_heads: int) -> None:
        super().__init__()
        if first_dim % num_heads or second_dim % num_heads:
            raise ValueError(
                f"stream widths {first_dim} and {second_dim} must be divisible by "
                f"num_heads={num_heads}"
            )
        self.num_heads = num_heads
        first_head, second_head = first_dim // num_heads, second_dim // num_heads
        self.first_linear = nn.Linear(first_dim, 1, bias=False)
        self.second_linear = nn.Linear(second_dim, 1)
        bilinear = torch.empty(num_heads, first_head, second_head)
        nn.init.xavier_normal_(bilinear)
        self.bilinear = nn.Parameter(bilinear)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """Return the fused logits `(B,)` of the two stream outputs."""
        linear = self.first_linear(first) + self.second_linear(second)  # (B, 1)
        first_heads = first.view(first.shape[0], self.num_heads, -1)  # (B, k, D1 / k)
        second_heads = second.view(second.shape[0], self.num_heads, -1)  # (B, k, D2 / k)
        bilinear = torch.einsum("bki,kij,bkj->b", first_heads, self.bilinear, second_heads)
        return linear.squeeze(1) + bilinear  # (B,)
