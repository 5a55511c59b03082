"""Checks that llama.cpp loads ferrotune's GGUF exports and continues a chat as ferrotune does.

Usage (from the repository root, after `cargo build -p ferrotune --bins`; the exports are
written by `FERROTUNE_EXPORT_CHECK_DIR=/tmp/export_check cargo test -p ferrotune --test export`
plus the extra `ferrotune export ... export_format=gguf export_quantization=...` runs named in
tools/check_export.py):

    python3 -m venv /work/pyref/llama && /work/pyref/llama/bin/pip install -r tools/requirements-bench.txt
    /work/pyref/llama/bin/python tools/check_gguf_llama_cpp.py /tmp/export_check

For every `*.gguf` below the directory: llama.cpp (llama-cpp-python, 2 threads) answers one
chat message greedily with the chat template stored in the file, `ferrotune chat` answers the
same message greedily from the same file (the file's template too: no `template` key), and the
two texts must be equal. Exits 1 on any difference.

The tiny gemma and phi3 exports, which have no tokenizer, are compared on token ids and logits
by tools/check_gguf_tiny_llama_cpp.py instead.
"""

import subprocess
import sys
from pathlib import Path

from llama_cpp import Llama

QUESTION = "What is the capital of France?"
MAX_TOKENS = 24


def llama_cpp_answer(path: Path) -> str:
    llm = Llama(model_path=str(path), n_ctx=512, n_threads=2, verbose=False, seed=0)
    out = llm.create_chat_completion(
        messages=[{"role": "user", "content": QUESTION}],
        temperature=0.0,
        top_k=1,
        max_tokens=MAX_TOKENS,
    )
    return out["choices"][0]["message"]["content"]


def ferrotune_answer(path: Path) -> str:
    out = subprocess.run(
        [
            "target/debug/ferrotune",
            "chat",
            f"model_name_or_path={path}",
            "do_sample=false",
            f"max_new_tokens={MAX_TOKENS}",
        ],
        input=QUESTION + "\n",
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.rstrip("\n").replace("\\n", "\n")


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/export_check")
    files = sorted(root.rglob("*.gguf"))
    if not files:
        print(f"no .gguf below {root}")
        return 1
    failed = 0
    for path in files:
        ours, theirs = ferrotune_answer(path), llama_cpp_answer(path)
        same = ours.strip() == theirs.strip()
        failed += not same
        print(f"[{path.parent.name}/{path.name}] {'same' if same else 'DIFFERENT'}")
        print(f"  ferrotune: {ours!r}\n  llama.cpp: {theirs!r}")
    print("all answers equal" if not failed else f"{failed} file(s) differ")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
