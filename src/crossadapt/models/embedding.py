"""Per-field embedding tables shared by every CTR architecture of the model zoo."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from crossadapt.errors import SchemaError
from crossadapt.models.batch import Batch
from crossadapt.models.configs import DEFAULT_INIT_STD

if TYPE_CHECKING:
    from crossadapt.data.schema import FeatureSchema

logger = logging.getLogger(__name__)

PAD_INDEX = 0

BatchGroup = Literal["categorical", "multi_valued", "numeric"]


def batch_group(field: Any) -> BatchGroup:
    """Return the `Batch` tensor that carries `field`: categorical, multi_valued or numeric.

    Categorical fields and numeric `bucket` fields are row indices in `Batch.categorical`.
    Numeric `log` fields are values in `Batch.numeric`, embedded as `value * row`.
    """
    if field.type == "categorical":
        return "categorical"
    if field.type == "multi_valued":
        return "multi_valued"
    if field.type == "numeric":
        transform = getattr(field, "transform", None)
        if transform == "bucket":
            return "categorical"
        if transform in ("log", None):
            return "numeric"
        raise SchemaError(
            f"field '{field.name}': unknown numeric transform {transform!r}; "
            "use 'log' or 'bucket' in schema.json"
        )
    raise SchemaError(
        f"field '{field.name}': unknown type {field.type!r}; "
        "use 'categorical', 'multi_valued' or 'numeric' in schema.json"
    )


def describe_dims(names: Sequence[str], dims: Sequence[int]) -> str:
    """Group field names by embedding dim, e.g. `dim 8: user_id, item_id; dim 16: genres`."""
    by_dim: dict[int, list[str]] = {}
    for name, dim in zip(names, dims, strict=True):
        by_dim.setdefault(dim, []).append(name)
    return "; ".join(f"dim {dim}: {', '.join(fields)}" for dim, fields in sorted(by_dim.items()))


class FeatureEmbedding(nn.Module):
    """Look up one embedding per field and return them per field, stacked or flattened.

    Each field of `schema.embedded_fields()` owns one `nn.Embedding` in
    `self.tables[field_name]`:

    - categorical and bucket fields: `vocab_size x d_f`, row 0 (PAD) zero and never
      updated (`padding_idx=0`);
    - multi-valued fields: the same, mean-pooled over the non-PAD tokens of each row,
      `e = sum_{t != PAD} E[t] / max(1, #{t != PAD})`, so a row with no token gets zeros;
    - numeric `log` fields: one row `r` (`1 x d_f`), `e = value * r`.

    Field order (and so the order of `forward`'s list and of `stacked`'s F axis) is
    `schema.embedded_fields()`: categorical and bucket, then multi-valued, then numeric.

    NOTE: one table per field is kept although one fused table with per-field offsets
    was faster: 17-19 ms against 21-23 ms per training step at 1,000 rows per field and
    about 10 % faster at 100,000 rows per field (B=4096, 26 fields of dim 16, MLP
    [128, 64], Adam, torch 2.13 CPU on 2 shared cores, interleaved runs). Per-field
    modules keep the state_dict keys and the per-field table access that embedding
    transfer and checkpoints use.

    Args:
        schema: feature schema with an `embedding_dim` on every field.
        embedding_dim: if set, use this dim for every field instead of the schema's
            (`FirstOrderLinear` uses 1 for its per-feature weights).
        init_std: standard deviation of the normal initialisation of the rows
            (default `DEFAULT_INIT_STD` = 1e-4, the FuxiCTR default).
        sparse: if True, categorical and multi-valued tables get sparse row gradients
            (`torch.sparse_coo_tensor`); numeric rows stay dense.

    Example:
        >>> embedding = FeatureEmbedding(schema)
        >>> per_field = embedding(batch)          # list of (B, d_f)
        >>> stacked = embedding.stacked(batch)    # (B, F, d), uniform dims only
    """

    def __init__(
        self,
        schema: FeatureSchema,
        embedding_dim: int | None = None,
        init_std: float = DEFAULT_INIT_STD,
        sparse: bool = False,
    ) -> None:
        super().__init__()
        self.sparse = sparse
        fields = list(schema.embedded_fields())
        if not fields:
            raise SchemaError(
                "the feature schema has no embedded field; add at least one categorical, "
                "multi-valued or numeric field to schema.json"
            )

        self.field_names: list[str] = []
        self.dims: list[int] = []
        self.tables = nn.ModuleDict()
        self.categorical_fields: list[str] = []
        self.multi_valued_fields: list[str] = []
        self.numeric_fields: list[str] = []
        self._groups: list[tuple[BatchGroup, int]] = []

        for field in fields:
            dim = embedding_dim if embedding_dim is not None else field.embedding_dim
            if dim is None or int(dim) < 1:
                raise SchemaError(
                    f"field '{field.name}': embedding_dim is {dim!r}; set a positive dim "
                    "with FeatureSchema.with_embedding_dims(dim) before building a model"
                )
            group = batch_group(field)
            if group == "numeric":
                table = nn.Embedding(1, int(dim))
                nn.init.normal_(table.weight, std=init_std)
            else:
                table = nn.Embedding(int(field.vocab_size), int(dim), padding_idx=PAD_INDEX)
                nn.init.normal_(table.weight, std=init_std)
                with torch.no_grad():
                    table.weight[PAD_INDEX].zero_()

            group_fields = getattr(self, f"{group}_fields")
            self._groups.append((group, len(group_fields)))
            group_fields.append(field.name)
            self.field_names.append(field.name)
            self.dims.append(int(dim))
            self.tables[field.name] = table

    @property
    def num_fields(self) -> int:
        """Number of embedded fields F."""
        return len(self.field_names)

    @property
    def output_dim(self) -> int:
        """Width of `flat`'s output: the sum of the field dims."""
        return sum(self.dims)

    @property
    def uniform_dim(self) -> int | None:
        """The dim shared by every field, or None when the dims differ."""
        return self.dims[0] if len(set(self.dims)) == 1 else None

    def require_uniform_dim(self, architecture: str) -> int:
        """Return the shared dim, or raise SchemaError naming the fields whose dims differ."""
        dim = self.uniform_dim
        if dim is None:
            raise SchemaError(
                f"architecture '{architecture}' needs one embedding_dim for all fields, "
                f"but the schema has several ({describe_dims(self.field_names, self.dims)}); "
                "set one embedding_dim for every field (an int in params.yaml, or "
                "FeatureSchema.with_embedding_dims(dim))"
            )
        return dim

    def forward(self, batch: Batch) -> list[torch.Tensor]:
        """Return one `(B, d_f)` tensor per field, in `field_names` order."""
        self._check_batch(batch)
        embeddings: list[torch.Tensor] = []
        for name, (group, column) in zip(self.field_names, self._groups, strict=True):
            weight = self.tables[name].weight
            if group == "categorical":
                indices = batch.categorical[:, column]  # (B,)
                embeddings.append(
                    F.embedding(indices, weight, padding_idx=PAD_INDEX, sparse=self.sparse)
                )
            elif group == "multi_valued":
                tokens = batch.multi_valued[:, column, :]  # (B, L)
                embeddings.append(
                    F.embedding_bag(
                        tokens, weight, mode="mean", padding_idx=PAD_INDEX, sparse=self.sparse
                    )
                )
            else:
                values = batch.numeric[:, column : column + 1]  # (B, 1)
                embeddings.append(values * weight[0])  # (B, d_f)
        return embeddings

    def stacked(self, batch: Batch) -> torch.Tensor:
        """Return the embeddings as one `(B, F, d)` tensor; needs one dim for all fields."""
        if self.uniform_dim is None:
            self.require_uniform_dim("stacked field embeddings")
        return torch.stack(self(batch), dim=1)  # (B, F, d)

    def flat(self, batch: Batch) -> torch.Tensor:
        """Return the embeddings concatenated into one `(B, sum_f d_f)` tensor."""
        return torch.cat(self(batch), dim=1)  # (B, sum d_f)

    def get_table(self, field: str) -> torch.Tensor:
        """Return the live weight of `field`'s table (`vocab_size x d_f`; 1 x d_f for log)."""
        return self._table(field).weight

    def set_table(self, field: str, weight: torch.Tensor) -> None:
        """Copy `weight` into `field`'s table in place (shape must match; no gradient).

        The rows are copied as given, PAD row included: a transferred table keeps the
        teacher's zero PAD row.
        """
        table = self._table(field)
        if tuple(weight.shape) != tuple(table.weight.shape):
            raise SchemaError(
                f"field '{field}': table of shape {tuple(weight.shape)} does not fit the "
                f"model's table of shape {tuple(table.weight.shape)} (vocab_size x "
                "embedding_dim); project or align the table to that shape first"
            )
        with torch.no_grad():
            table.weight.copy_(weight)

    def _table(self, field: str) -> nn.Embedding:
        if field not in self.tables:
            raise SchemaError(
                f"field '{field}' has no embedding table; known fields: "
                f"{', '.join(self.field_names)}"
            )
        table: nn.Embedding = self.tables[field]
        return table

    def _check_batch(self, batch: Batch) -> None:
        expected = {
            "categorical": len(self.categorical_fields),
            "multi_valued": len(self.multi_valued_fields),
            "numeric": len(self.numeric_fields),
        }
        for group, count in expected.items():
            tensor: torch.Tensor = getattr(batch, group)
            if tensor.dim() < 2 or tensor.shape[1] != count:
                fields = getattr(self, f"{group}_fields")
                raise SchemaError(
                    f"batch.{group} has shape {tuple(tensor.shape)} but the schema has "
                    f"{count} {group} fields ({', '.join(fields) or 'none'}); encode the data "
                    "with the same schema.json as the model"
                )


class FirstOrderLinear(nn.Module):
    """First-order term `w_0 + sum_f w_f(x_f)` with a one-dim embedding per field.

    The per-field weights are a `FeatureEmbedding` of dim 1, so they count as embedding
    parameters. The bias `w_0` is a dense parameter.

    Example:
        >>> linear = FirstOrderLinear(schema)
        >>> linear(batch).shape
        torch.Size([B])
    """

    def __init__(
        self, schema: FeatureSchema, init_std: float = DEFAULT_INIT_STD, sparse: bool = False
    ) -> None:
        super().__init__()
        self.weights = FeatureEmbedding(schema, embedding_dim=1, init_std=init_std, sparse=sparse)
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, batch: Batch) -> torch.Tensor:
        """Return the first-order logits `(B,)`."""
        return self.weights.flat(batch).sum(dim=1) + self.bias  # (B,)
