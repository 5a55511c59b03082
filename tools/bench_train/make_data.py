"""Builds the benchmark's training data: exactly `rows` rows of exactly `seq` token ids.

Writes into --out-dir:

* `bench_pt.jsonl` and `dataset_info.json` (dataset name `bench_pt`, column `prompt` = `text`):
  a prefix of LLaMA-Factory's c4_demo texts chosen so that LLaMA-Factory's pre-training
  packing (each text tokenized without special tokens with the eos token string appended, all
  ids concatenated, cut into `cutoff_len` blocks, the remainder dropped; v0.9.5
  `data/processor/pretrain.py`) yields exactly `rows` blocks. The last text is cut short (by
  characters) where a whole text would leave a full extra block. LLaMA-Factory and ferrotune
  read this dataset folder.
* `rows.json`: {"input_ids": [[...] * seq] * rows, "eos_token_id": id, "pad_token_id": id,
  "tokens_total": n}: the same blocks, as the HF+PEFT runner trains on them.

Runs in the transformers environment (the tokenizer of the model folder).

    python tools/bench_train/make_data.py --model models/smollm2-f32-hf \
        --source /work/shared/data/llamafactory/c4_demo.jsonl --rows 16 --seq 512 --out-dir DIR
"""

from __future__ import annotations

import argparse
import json
import os

from transformers import AutoTokenizer


def count_tokens(tok, text: str) -> int:
    """Token ids of `text` + eos string as LLaMA-Factory's pt processor tokenizes one example."""
    return len(tok(text + tok.eos_token, add_special_tokens=False)["input_ids"])


def choose_texts(tok, texts: list[str], rows: int, seq: int) -> list[str]:
    """Texts (in order, cycling if needed, the last one cut) whose packed total of token ids
    lies in [rows * seq, (rows + 1) * seq), so packing keeps exactly `rows` blocks."""
    need = rows * seq
    chosen: list[str] = []
    total = 0
    i = 0
    while total < need:
        text = texts[i % len(texts)]
        i += 1
        n = count_tokens(tok, text)
        if total + n < need + seq:
            chosen.append(text)
            total += n
            continue
        # The whole text would leave a full extra block: take the shortest prefix (by
        # characters) that reaches `need`; token counts grow with the prefix length.
        lo, hi = 1, len(text)
        while lo < hi:
            mid = (lo + hi) // 2
            if total + count_tokens(tok, text[:mid]) >= need:
                hi = mid
            else:
                lo = mid + 1
        cut = text[:lo]
        chosen.append(cut)
        total += count_tokens(tok, cut)
    if not need <= total < need + seq:
        raise SystemExit(f"make_data: packed {total} tokens, wanted [{need}, {need + seq})")
    return chosen


def pack(tok, texts: list[str], seq: int) -> list[list[int]]:
    """LLaMA-Factory's pt packing: concatenate, cut into `seq` blocks, drop the remainder
    (the model has no bos to put first: `add_bos_token` is false for SmolLM2)."""
    ids: list[int] = []
    for t in texts:
        ids.extend(tok(t + tok.eos_token, add_special_tokens=False)["input_ids"])
    if getattr(tok, "add_bos_token", False):
        raise SystemExit("make_data: tokenizer adds bos; packing would overwrite each row's first id")
    n = len(ids) // seq * seq
    return [ids[i : i + seq] for i in range(0, n, seq)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--source", required=True, help="jsonl with a `text` field per line")
    ap.add_argument("--rows", type=int, required=True)
    ap.add_argument("--seq", type=int, required=True)
    ap.add_argument("--out-dir", required=True)
    args = ap.parse_args()

    tok = AutoTokenizer.from_pretrained(args.model)
    with open(args.source, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    chosen = choose_texts(tok, texts, args.rows, args.seq)
    rows = pack(tok, chosen, args.seq)
    if len(rows) != args.rows:
        raise SystemExit(f"make_data: {len(rows)} rows, wanted {args.rows}")

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "bench_pt.jsonl"), "w", encoding="utf-8") as f:
        for t in chosen:
            f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
    info = {"bench_pt": {"file_name": "bench_pt.jsonl", "columns": {"prompt": "text"}}}
    with open(os.path.join(args.out_dir, "dataset_info.json"), "w", encoding="utf-8") as f:
        json.dump(info, f, indent=2)
    with open(os.path.join(args.out_dir, "rows.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "input_ids": rows,
                "eos_token_id": tok.eos_token_id,
                "pad_token_id": tok.pad_token_id,
                "texts": len(chosen),
                "tokens_total": sum(count_tokens(tok, t) for t in chosen),
            },
            f,
        )
    print(json.dumps({"rows": len(rows), "seq": args.seq, "texts": len(chosen)}))


if __name__ == "__main__":
    main()
