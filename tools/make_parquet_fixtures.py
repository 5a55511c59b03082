"""Writes the parquet reader's fixtures into fixtures/parquet/ (a few KB in all).

Each case is a parquet file beside the JSON file holding the same rows as pyarrow presents
them (`Table.to_pylist()`, which is also how Hugging Face `datasets` returns rows): the Rust
test reads the parquet file and compares every row with the JSON.

| file | columns | writer options |
|---|---|---|
| alpaca.snappy.parquet | instruction, input, output (first 3 rows of alpaca_en_demo.json) | snappy, 2 rows per row group |
| alpaca.gzip.parquet | same rows | gzip, dictionary encoding off |
| sharegpt.zstd.parquet | conversations: list<struct<from, value>>, tools (first 2 rows of glaive_toolcall_en_demo.json) | zstd |
| types.parquet | ints, floats, bools, nulls, nested lists, structs, non-ASCII text | snappy, parquet format 2.6 |

Run from the repository root with an environment that has pyarrow (tools/requirements.txt or
/work/pyref/lf): `python tools/make_parquet_fixtures.py`. The source rows come from
LLaMA-Factory's demo data (`$LLAMAFACTORY_DATA`, default ../shared/data/llamafactory beside the
repository). Re-running writes identical files.
"""

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "fixtures" / "parquet"
DATA = Path(os.environ.get("LLAMAFACTORY_DATA", ROOT.parent / "shared" / "data" / "llamafactory"))


def demo_rows(name: str, count: int) -> list:
    with open(DATA / name, encoding="utf-8") as f:
        return json.load(f)[:count]


# Every value type the reader maps, with nulls inside lists and structs, and an all-null column.
TYPES_ROWS = [
    {
        "id": 1,
        "score": 0.5,
        "flag": True,
        "note": "plain",
        "tags": ["a", "b"],
        "matrix": [[1, 2], [3]],
        "meta": {"lang": "en", "turns": 2},
        "maybe_int": 7,
        "nothing": None,
    },
    {
        "id": -2,
        "score": -1.25e-3,
        "flag": False,
        "note": "ünïcödé ✓ 中文",
        "tags": [],
        "matrix": [],
        "meta": {"lang": None, "turns": 0},
        "maybe_int": None,
        "nothing": None,
    },
    {
        "id": 9007199254740993,
        "score": 1e300,
        "flag": None,
        "note": None,
        "tags": None,
        "matrix": [[None, 4]],
        "meta": None,
        "maybe_int": 0,
        "nothing": None,
    },
]


def write_case(stem: str, rows: list, files: dict) -> None:
    """Writes `stem.json` and one parquet file per `files` entry (name -> writer options)."""
    table = pa.Table.from_pylist(rows)
    expected = None
    for name, options in files.items():
        path = OUT / name
        pq.write_table(table, path, **options)
        back = pq.read_table(path).to_pylist()
        if expected is None:
            expected = back
        assert back == expected, f"{name} reads back differently"
    with open(OUT / f"{stem}.json", "w", encoding="utf-8") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    alpaca = demo_rows("alpaca_en_demo.json", 3)
    write_case(
        "alpaca",
        alpaca,
        {
            "alpaca.snappy.parquet": {"compression": "snappy", "row_group_size": 2},
            "alpaca.gzip.parquet": {"compression": "gzip", "use_dictionary": False},
        },
    )
    sharegpt = demo_rows("glaive_toolcall_en_demo.json", 2)
    write_case("sharegpt", sharegpt, {"sharegpt.zstd.parquet": {"compression": "zstd"}})
    write_case("types", TYPES_ROWS, {"types.parquet": {"compression": "snappy", "version": "2.6"}})
    for path in sorted(OUT.iterdir()):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
