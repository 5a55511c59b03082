"""Runs llama.cpp and gguf-py on ferrotune's GGUF exports of the tiny gemma and phi3 models and
writes what llama.cpp computed to fixtures/export/llama_cpp_tiny.json for the Rust test.

Usage (from the repository root):

    FERROTUNE_EXPORT_CHECK_DIR=/tmp/export_check \
        cargo test -p ferrotune-export --test gguf_export tiny_
    /work/pyref/llama/bin/python tools/check_gguf_tiny_llama_cpp.py /tmp/export_check/tiny

The Rust tests `tiny_gemma_*`/`tiny_phi3_*` (crates/ferrotune-export/tests/gguf_export.rs)
write `<case>.gguf` (case = gemma-f32, gemma-q8_0, phi3-f32, phi3-q8_0; a byte-level vocabulary
of 256 tokens stands in for the tokenizer the tiny models lack) and `<case>.json` (the input
ids, ferrotune's last-position logits and greedy tokens on that file). The first run of the Rust
test fails until the fixture exists; run this script, then the test again.

For every case:
1. gguf-py (the `gguf` package of /work/pyref/venv, run as a subprocess because the llama.cpp
   environment lacks it) reads the file: architecture, tensor names, types and shapes.
2. llama.cpp (llama-cpp-python, 2 threads, CPU, f32 KV cache so that only the weights' type
   matters) evaluates the reference input_ids; its last-position logits are compared with
   ferrotune's (printed max |diff|) and 8 tokens are generated greedily (argmax of the logits,
   one token per step) and compared with ferrotune's: all of them for f32 files, those before
   the first near tie for quantized files (a step whose top-2 logit margin is below NEAR_TIE:
   the random tiny models have some, where q8_0 rounding may pick either token).
The fixture holds llama.cpp's input_ids, last-position logits, greedy tokens and the top-2
margin of each greedy step per case. Exits 1 when gguf-py fails or the compared greedy tokens
differ.
"""

import json
import subprocess
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures/export/llama_cpp_tiny.json"
GGUF_PYTHON = "/work/pyref/venv/bin/python"
NEW_TOKENS = 8
NEAR_TIE = 0.05


def gguf_py_summary(path: Path) -> dict:
    """Architecture and tensors of `path` as gguf-py reads them (run under GGUF_PYTHON)."""
    code = (
        "import json, sys, gguf\n"
        "r = gguf.GGUFReader(sys.argv[1])\n"
        "f = r.fields['general.architecture']\n"
        "arch = bytes(f.parts[f.data[0]]).decode()\n"
        "t = {x.name: [x.tensor_type.name, [int(d) for d in x.shape]] for x in r.tensors}\n"
        "print(json.dumps({'arch': arch, 'tensors': t}))\n"
    )
    out = subprocess.run([GGUF_PYTHON, "-c", code, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def llama_cpp_run(path: Path, ids: list[int]) -> tuple[list[float], list[int], list[float]]:
    """llama.cpp's last-position logits for `ids`, NEW_TOKENS greedy tokens after them and the
    top-2 logit margin of each greedy step."""
    import numpy as np
    from llama_cpp import Llama

    # type_k/type_v 0 = GGML_TYPE_F32 (the default f16 cache adds ~5e-3 to the logits).
    llm = Llama(model_path=str(path), n_ctx=64, n_threads=2, logits_all=True, verbose=False, seed=0,
                type_k=0, type_v=0)
    llm.eval(ids)
    last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
    greedy, margins = [], []
    for _ in range(NEW_TOKENS):
        row = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top2 = np.sort(row)[-2:]
        nxt = int(np.argmax(row))
        greedy.append(nxt)
        margins.append(float(top2[1] - top2[0]))
        llm.eval([nxt])
    return last.tolist(), greedy, margins


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/export_check/tiny")
    paths = sorted(root.glob("*.gguf"))
    if not paths:
        print(f"no .gguf in {root}")
        return 1
    fixture = {"input_ids": None, "new_tokens": NEW_TOKENS, "cases": {}}
    failed = 0
    for path in paths:
        case = path.stem
        ours = json.loads(path.with_suffix(".json").read_text())
        ids = ours["input_ids"]
        if fixture["input_ids"] not in (None, ids):
            print(f"[{case}] input_ids differ from the other cases'")
            return 1
        fixture["input_ids"] = ids
        summary = gguf_py_summary(path)
        family = case.split("-")[0]
        print(f"[{case}] gguf-py: arch {summary['arch']}, {len(summary['tensors'])} tensors, "
              f"types {sorted({t for t, _ in summary['tensors'].values()})}")
        if summary["arch"] != family:
            print(f"  gguf-py architecture {summary['arch']!r} != {family!r}")
            failed += 1
        last, greedy, margins = llama_cpp_run(path, ids)
        diff = max(abs(a - b) for a, b in zip(last, ours["last_logits"]))
        near_tie = next((i for i, m in enumerate(margins) if m < NEAR_TIE), len(margins))
        decisive = len(margins) if case.endswith("-f32") else near_tie
        same = greedy[:decisive] == ours["greedy"][:decisive]
        failed += not same
        print(f"  llama.cpp vs ferrotune: max |last logit diff| = {diff:.3e}; greedy "
              f"{'same' if same else 'DIFFERENT'} over the first {decisive} steps: "
              f"llama.cpp {greedy}, ferrotune {ours['greedy']}; margins {[round(m, 4) for m in margins]}")
        fixture["cases"][case] = {"last_logits": last, "greedy": greedy, "margins": margins}
    FIXTURE.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {FIXTURE}")
    print("all cases agree" if not failed else f"{failed} problem(s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
