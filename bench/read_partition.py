"""Time reading one day partition into pandas: Python `str` columns against Arrow strings.

Run from the repository root: ``.venv/bin/python bench/read_partition.py`` (see
bench/SCALE.md). It writes one synthetic day of ``--rows`` rows to
``bench/work/read_partition``: 26 categorical and 13 numeric fields, with the vocabularies
of the 20M-row scale run. It reads the file back with ``pyarrow.parquet.read_table`` and
converts it twice: with ``to_pandas()`` (Python `str` objects), and with the Arrow-backed
strings that ``crossadapt.data.partitions.read_day`` uses. It reports the conversion
seconds and the frame's memory (``DataFrame.memory_usage(deep=True)``).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WORK_DIR, command_line, machine_info, markdown_table, now_utc, write_results
from scale import scaled_vocab_sizes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000, help="rows of the day")
    parser.add_argument("--results-dir", default=None, help="where results go (bench/results)")
    parser.add_argument("--work-dir", default=str(WORK_DIR / "read_partition"))
    args = parser.parse_args(argv)

    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from crossadapt.data.synthetic import SyntheticConfig, generate_day

    config = SyntheticConfig(
        n_days=1,
        rows_per_day=args.rows,
        n_categorical=26,
        n_numeric=13,
        vocab_sizes=scaled_vocab_sizes(10_000_000),
        zipf_exponent=1.1,
        seed=0,
    )
    path = Path(args.work_dir) / f"day_{args.rows}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    generate_day(config, 0).to_parquet(path, index=False)

    table = pq.read_table(path)
    strings = pd.StringDtype("pyarrow")
    mapping = {pa.string(): strings, pa.large_string(): strings}
    results = []
    for label, mapper in (("Python str", None), ("Arrow strings", mapping.get)):
        started = time.perf_counter()
        frame = table.to_pandas(types_mapper=mapper)
        seconds = time.perf_counter() - started
        memory = int(frame.memory_usage(deep=True).sum())
        results.append({"strings": label, "seconds": seconds, "frame_bytes": memory})
        print(f"{label}: {seconds:.2f} s, {memory / 2**30:.2f} GiB", flush=True)
        del frame
    path.unlink()

    payload = {
        "benchmark": "read_partition",
        "measured_at": now_utc(),
        "command": command_line(),
        "machine": machine_info(),
        "rows": args.rows,
        "load_average": list(os.getloadavg()),
        "results": results,
    }
    markdown = "\n".join(
        [
            "# Reading one day partition into pandas\n",
            f"Measured {payload['measured_at']}, one synthetic day of {args.rows:,} rows "
            "(26 string and 13 numeric columns). Command: "
            f"`{payload['command']}`.\n",
            markdown_table(
                ["strings", "to_pandas s", "frame GiB"],
                [
                    [row["strings"], f"{row['seconds']:.2f}", f"{row['frame_bytes'] / 2**30:.2f}"]
                    for row in results
                ],
            ),
        ]
    )
    kwargs = {"results_dir": Path(args.results_dir)} if args.results_dir else {}
    write_results("read_partition", payload, markdown, **kwargs)


if __name__ == "__main__":
    main()
