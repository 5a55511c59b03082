#!/usr/bin/env python3
"""Write fixtures/data/templates_multiturn.json: for each built-in template, the token ids
LLaMA-Factory 0.9.5 makes for one fixed multi-turn conversation (Template.encode_multiturn,
after get_template_and_fix_tokenizer), plus, for the chatml-style templates, the ids of the
demo model's own Jinja chat template rendered by transformers on the same conversation.

Every template runs in its own process (get_template_and_fix_tokenizer edits LLaMA-Factory's
module-level registry and the tokenizer in place).

Run from the repository root with the environment of tools/requirements-llamafactory.txt:

    /work/pyref/lf/bin/python tools/make_template_fixtures.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MODEL_DIR = str(REPO / "models" / "smollm2-f32-hf")
OUT = REPO / "fixtures" / "data" / "templates_multiturn.json"

TEMPLATES = [
    "default", "empty", "alpaca", "vicuna", "chatml", "qwen", "qwen3", "qwen3_nothink", "llama2",
    "llama3", "mistral", "gemma", "gemma2", "phi", "phi4", "deepseek", "deepseek3", "glm4",
    "smollm", "smollm2", "yi", "zephyr", "cohere", "falcon", "olmo", "solar",
]
SYSTEM = "You are a concise assistant."
MESSAGES = [
    {"role": "user", "content": "Hi! What is 2 + 2?"},
    {"role": "assistant", "content": "2 + 2 = 4."},
    {"role": "user", "content": "And in French, s'il vous plaît?"},
    {"role": "assistant", "content": "Deux plus deux font quatre. 🙂"},
]


def one(name: str) -> dict:
    from transformers import AutoTokenizer
    from llamafactory.data.template import get_template_and_fix_tokenizer
    from llamafactory.hparams import DataArguments

    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    template = get_template_and_fix_tokenizer(tok, DataArguments(template=name))
    pairs = template.encode_multiturn(tok, MESSAGES, SYSTEM, None)
    return {"pairs": [[list(p), list(a)] for p, a in pairs]}


def jinja_ids() -> list[int]:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(MODEL_DIR)
    msgs = [{"role": "system", "content": SYSTEM}] + MESSAGES
    text = tok.apply_chat_template(msgs, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        try:
            print(json.dumps(one(sys.argv[2])))
        except Exception as e:  # recorded: the template cannot be used with this tokenizer
            print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
        return
    cases = {}
    for name in TEMPLATES:
        out = subprocess.run([sys.executable, __file__, "--one", name], check=True, capture_output=True, text=True)
        cases[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, "error" if "error" in cases[name] else len(cases[name]["pairs"]), file=sys.stderr)
    doc = {
        "llamafactory": __import__("llamafactory").__version__,
        "system": SYSTEM,
        "messages": MESSAGES,
        "jinja_smollm2_ids": jinja_ids(),
        "cases": cases,
    }
    OUT.write_text(json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n")
    print("wrote", OUT, OUT.stat().st_size, "bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
