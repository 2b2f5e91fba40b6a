"""Train DNN or DCN-V2 with FuxiCTR 2.3.10 on the benchmark's parquet files; run it with
bench/.venv-fuxictr/bin/python (bench/throughput.py does), never with the project's venv.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import polars as pl
from fuxictr.preprocess import FeatureProcessor

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MemorySampler, emit_result

logger = logging.getLogger("bench.fuxictr_runner")


class SignedLogProcessor(FeatureProcessor):
    """FeatureProcessor with the numeric transform of the CrossAdapt schema.

    Module level because FeatureProcessor.fit pickles the processor.
    """

    def signed_log1p(self, column: str) -> pl.Expr:
        """Return ``sign(x) * log1p(|x|)`` of ``column``, the CrossAdapt ``log`` transform."""
        value = pl.col(column).cast(pl.Float64)
        return value.sign() * value.abs().log1p()


def build_models() -> dict[str, type]:
    """Return FuxiCTR's DNN and DCN-V2 (parallel) built from FuxiCTR's own layers.

    The 2.3.10 wheel ships only the LongCTR and multitask parts of model_zoo, so these
    two follow model_zoo/DNN and model_zoo/DCNv2 of the FuxiCTR repository: the flattened
    ``FeatureEmbedding`` output feeds ``MLP_Block`` (DNN), or ``CrossNetV2`` and
    ``MLP_Block`` side by side whose concatenation feeds one linear layer (DCN-V2).
    """
    import torch
    from fuxictr.pytorch.layers import CrossNetV2, FeatureEmbedding, MLP_Block
    from fuxictr.pytorch.models import BaseModel
    from torch import nn

    class DNN(BaseModel):
        def __init__(
            self, feature_map: Any, embedding_dim: int, hidden_units: list[int], **kwargs: Any
        ):
            super().__init__(feature_map, model_id="DNN", **kwargs)
            self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
            self.mlp = MLP_Block(
                input_dim=feature_map.sum_emb_out_dim(),
                output_dim=1,
                hidden_units=hidden_units,
                hidden_activations="ReLU",
                output_activation=None,
                dropout_rates=0,
                batch_norm=False,
            )
            self.compile(kwargs["optimizer"], kwargs["loss"], kwargs["learning_rate"])
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs: Any) -> dict[str, torch.Tensor]:
            features = self.get_inputs(inputs)
            feature_emb = self.embedding_layer(features, flatten_emb=True)
            return {"y_pred": self.output_activation(self.mlp(feature_emb))}

    class DCNv2(BaseModel):
        def __init__(
            self,
            feature_map: Any,
            embedding_dim: int,
            hidden_units: list[int],
            num_cross_layers: int = 3,
            **kwargs: Any,
        ):
            super().__init__(feature_map, model_id="DCNv2", **kwargs)
            self.embedding_layer = FeatureEmbedding(feature_map, embedding_dim)
            input_dim = feature_map.sum_emb_out_dim()
            self.crossnet = CrossNetV2(input_dim, num_cross_layers)
            self.parallel_dnn = MLP_Block(
                input_dim=input_dim,
                output_dim=None,
                hidden_units=hidden_units,
                hidden_activations="ReLU",
                output_activation=None,
                dropout_rates=0,
                batch_norm=False,
            )
            self.fc = nn.Linear(input_dim + hidden_units[-1], 1)
            self.compile(kwargs["optimizer"], kwargs["loss"], kwargs["learning_rate"])
            self.reset_parameters()
            self.model_to_device()

        def forward(self, inputs: Any) -> dict[str, torch.Tensor]:
            features = self.get_inputs(inputs)
            feature_emb = self.embedding_layer(features, flatten_emb=True)
            final = torch.cat([self.crossnet(feature_emb), self.parallel_dnn(feature_emb)], dim=-1)
            return {"y_pred": self.output_activation(self.fc(final))}

    return {"dnn": DNN, "dcnv2": DCNv2}


def prepare_npz(args: argparse.Namespace) -> tuple[Any, Path, Path]:
    """Fit FuxiCTR's FeatureProcessor on the training parquet and write train/test .npz.

    Numeric fields get ``sign(x) log1p(|x|)`` after filling nulls with 0, the transform the
    CrossAdapt schema applies. FuxiCTR's Ray-based ``build_dataset`` is bypassed (Ray starts
    a local cluster); ``FeatureProcessor.transform`` runs in this process instead.
    """
    import numpy as np
    from fuxictr.features import FeatureMap

    data_dir = Path(args.work_dir)
    feature_cols = [
        {"name": args.categorical, "active": True, "dtype": "str", "type": "categorical"},
        {
            "name": args.numeric,
            "active": True,
            "dtype": "float",
            "type": "numeric",
            "fill_na": 0.0,
            "preprocess": "signed_log1p",
        },
    ]
    label_col = {"name": "label", "dtype": "float"}
    processor = SignedLogProcessor(
        feature_cols=feature_cols,
        label_col=label_col,
        dataset_id="synthetic",
        data_root=str(data_dir),
    )
    train_frame = processor.preprocess(processor.read_data(args.train, data_format="parquet"))
    processor.fit(train_frame, min_categr_count=args.min_count, rebuild_dataset=True)

    paths = []
    for split, source in (("train", train_frame), ("test", None)):
        if source is None:
            source = processor.preprocess(processor.read_data(args.test, data_format="parquet"))
        frame = source.collect()
        columns = {name: frame[name].to_numpy() for name in frame.columns}
        encoded = processor.transform(columns)
        path = data_dir / "synthetic" / f"{split}.npz"
        np.savez(path, **{name: np.asarray(values) for name, values in encoded.items()})
        paths.append(path)

    feature_map = FeatureMap("synthetic", str(data_dir / "synthetic"))
    feature_map.load(
        str(data_dir / "synthetic" / "feature_map.json"), {"embedding_dim": args.embedding_dim}
    )
    return feature_map, paths[0], paths[1]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the data, train one epoch (timed) and score the test rows."""
    import numpy as np
    import torch
    from fuxictr.pytorch.dataloaders import RankDataLoader
    from sklearn.metrics import roc_auc_score

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)

    started = time.perf_counter()
    feature_map, train_path, test_path = prepare_npz(args)
    prepare_seconds = time.perf_counter() - started

    train_gen, _ = RankDataLoader(
        feature_map,
        stage="train",
        train_data=str(train_path),
        valid_data=str(test_path),
        batch_size=args.batch_size,
        shuffle=True,
        data_format="npz",
        num_workers=0,
    )
    test_gen = RankDataLoader(
        feature_map,
        stage="test",
        test_data=str(test_path),
        batch_size=args.batch_size,
        data_format="npz",
        num_workers=0,
    )

    model_class = build_models()[args.arch]
    model = model_class(
        feature_map,
        embedding_dim=args.embedding_dim,
        hidden_units=args.hidden_units,
        gpu=-1,
        optimizer="adam",
        loss="binary_crossentropy",
        learning_rate=args.learning_rate,
        verbose=0,
        model_root=str(Path(args.work_dir) / "checkpoints"),
        metrics=["AUC", "logloss"],
    )

    # The body of BaseModel.fit without its per-epoch validation and checkpoint reload,
    # so the timed part is the training loop alone.
    model._max_gradient_norm = 10.0
    model._stop_training = False
    model._steps_per_epoch = len(train_gen)
    model._total_steps = 0
    model._eval_steps = len(train_gen) + 1
    model._epoch_index = 0
    started = time.perf_counter()
    model.train_epoch(train_gen)
    train_seconds = time.perf_counter() - started

    labels = np.load(test_path)["label"]
    predictions = model.predict(test_gen)
    train_rows = len(train_gen.dataset)
    return {
        "library": "fuxictr 2.3.10",
        "options": "its defaults (Xavier init, dense Adam)",
        "arch": args.arch,
        "train_rows": train_rows,
        "train_seconds": train_seconds,
        "rows_per_s": train_rows / train_seconds,
        "prepare_seconds": prepare_seconds,
        "test_rows": int(labels.shape[0]),
        "test_auc": float(roc_auc_score(labels, predictions)),
        "parameters": int(sum(p.numel() for p in model.parameters())),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--arch", choices=["dnn", "dcnv2"], required=True)
    parser.add_argument("--train", required=True, help="training parquet file")
    parser.add_argument("--test", required=True, help="test parquet file")
    parser.add_argument("--work-dir", required=True, help="folder for FuxiCTR's npz and map")
    parser.add_argument("--categorical", nargs="+", required=True, help="categorical columns")
    parser.add_argument("--numeric", nargs="+", required=True, help="numeric columns")
    parser.add_argument("--embedding-dim", type=int, default=16)
    parser.add_argument("--hidden-units", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--min-count", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2024)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with MemorySampler() as sampler:
        result = run(args)
    result["peak_rss_bytes"] = sampler.peak_rss_bytes
    result["peak_anon_bytes"] = sampler.peak_anon_bytes
    emit_result(result)


if __name__ == "__main__":
    main()
