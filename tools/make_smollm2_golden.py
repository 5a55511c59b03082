"""Golden forward-pass and tokenizer fixtures for the demo model SmolLM2-135M-Instruct (Q4_1 GGUF).

Writes
  fixtures/smollm2/golden.json            per-text input_ids, mean next-token NLL and last-position
                                          top-10 logits, plus one chat-formatted case
  fixtures/smollm2/tokenizer_cases.json   [{"text", "ids", "decoded"}] for ~40 tricky strings

Reference: the GGUF is converted to a float32 HF folder by /work/shared/tools/gguf_to_hf.py
(dequantized Q4_1 weights, Q/K rows un-permuted, tokenizer.json rebuilt from the GGUF's
tokenizer.ggml.* metadata) into models/smollm2-f32-hf (git-ignored, created when missing),
then loaded with transformers (float32, eager attention) and its fast tokenizer. So the
numbers describe the dequantized Q4_1 model, which is what ferrotune computes from the GGUF.

mean_nll = mean over positions t = 1..n-1 of -log softmax(logits[t-1])[input_ids[t]],
with log_softmax taken in float64 over the float32 logits. Ids never include special tokens
added by the tokenizer (add_special_tokens=False).

Run from the repository root (deterministic, safe to re-run; about 1 minute on 2 CPU cores):
  scripts/fetch_model.sh            # if models/SmolLM2-135M-Instruct.Q4_1.gguf is missing
  /work/pyref/venv/bin/python tools/make_smollm2_golden.py
Requirements: tools/requirements.txt. Set GGUF_TO_HF to use another copy of gguf_to_hf.py.
"""
import json
import os
import subprocess
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GGUF = os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
HF_DIR = os.path.join(ROOT, "models", "smollm2-f32-hf")
OUT = os.path.join(ROOT, "fixtures", "smollm2")
MIN_TOP_GAP = 5e-3
GGUF_TO_HF = os.environ.get("GGUF_TO_HF", "/work/shared/tools/gguf_to_hf.py")

TEXTS = [
    "The quick brown fox jumps over the lazy dog. This sentence contains every letter of the English "
    "alphabet, which is why typists have used it for more than a century.",
    "Photosynthesis is the process by which green plants use sunlight, water and carbon dioxide to make "
    "glucose and release oxygen into the air.",
    "Once upon a time, in a small village by the sea, there lived an old fisherman who told stories "
    "about a lighthouse that had never once gone dark. Every evening the children gathered on the pier "
    "to listen to his tales.",
    "To install the package, run pip install requests, then import it in your script and call "
    "requests.get with the URL you want to fetch.",
    "In 1969, Apollo 11 landed on the Moon. Neil Armstrong and Buzz Aldrin spent about two and a half "
    "hours outside the lunar module, collecting 21.5 kilograms of samples.",
]

CHAT_MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]

TOKENIZER_TEXTS = [
    "Hello world",
    "Hello, world! How are you today?",
    "",
    " ",
    "   leading spaces",
    "trailing spaces   ",
    "multiple    spaces   between   words",
    "line one\nline two\n\nline four",
    "tab\tseparated\tvalues\t",
    "\r\nwindows line ending\r\n",
    "café résumé naïve",
    "Über schön Mädchen Grüße",
    "España mañana niño",
    "中文分词测试，你好世界。",
    "日本語のテキストです。カタカナとひらがな。",
    "안녕하세요 세계",
    "emoji 😀🎉👍",
    "family 👨‍👩‍👧‍👦 and rainbow flag 🏳️‍🌈",
    "flags 🇫🇷🇯🇵🇺🇸",
    "def add(a, b):\n    return a + b\n",
    "class Foo:\n    def __init__(self):\n        self.x = [1, 2, 3]\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).collect();\n    println!(\"{:?}\", v);\n}\n",
    "1234567890",
    "3.14159",
    "2026-11-30",
    "The year 1999 had 365 days and $1,234,567.89 in sales.",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#top",
    "email me at someone@example.com",
    "<|im_start|>user\nhi<|im_end|>",
    "<|endoftext|>",
    "text before <|endoftext|> text after",
    "<|im_start|>assistant\nSure!<|im_end|>\n",
    "English, русский, العربية, עברית, ελληνικά",
    "mixed 中文 and English and 日本語 together",
    "I'm sure you'll see they've done it, haven't they?",
    "ALL CAPS SENTENCE WITH NUMBERS 42",
    "math: x^2 + y^2 = z^2, ∑ᵢ aᵢ ≤ ∞",
    "quotes \"double\" 'single' `back`",
    "a\u00a0non-breaking space and zero\u200bwidth",
    "repeated !!!!!!!! ???? ....",
]


def ensure_hf_folder() -> None:
    if os.path.exists(os.path.join(HF_DIR, "model.safetensors")):
        return
    if not os.path.exists(GGUF):
        sys.exit(f"missing {GGUF}: run scripts/fetch_model.sh first")
    subprocess.run([sys.executable, GGUF_TO_HF, GGUF, HF_DIR], check=True, stdout=subprocess.DEVNULL)


def score(model, ids: list[int]) -> dict:
    """mean next-token NLL (float64) and the last position's top-10 logits for one unpadded sequence."""
    input_ids = torch.tensor([ids])
    with torch.no_grad():
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), use_cache=False).logits[0]
    logits = logits.float()
    logp = torch.log_softmax(logits[:-1].double(), dim=-1)
    nll = -logp.gather(1, input_ids[0, 1:, None]).squeeze(1)
    top = torch.topk(logits[-1], 10)
    # keep the ranking robust to float32 summation-order noise in other implementations:
    # neighbouring logits among the top 11 must differ by at least MIN_TOP_GAP
    top11 = torch.topk(logits[-1], 11).values
    gap = (top11[:-1] - top11[1:]).min().item()
    assert gap >= MIN_TOP_GAP, f"top-11 logits too close ({gap:.2e}); pick another text"
    return {
        "mean_nll": nll.mean().item(),
        "last_top10_ids": top.indices.tolist(),
        "last_top10_logits": top.values.tolist(),
    }


def main() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    ensure_hf_folder()
    os.makedirs(OUT, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(HF_DIR)
    model = AutoModelForCausalLM.from_pretrained(HF_DIR, dtype=torch.float32, attn_implementation="eager").eval()

    cases = []
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert 20 <= len(ids) <= 80, (len(ids), text)
        case = {"text": text, "input_ids": ids, **score(model, ids)}
        cases.append(case)
        print(f"n={len(ids):3d} mean_nll={case['mean_nll']:.6f} top10={case['last_top10_ids']}")

    chat_text = tok.apply_chat_template(CHAT_MESSAGES, add_generation_prompt=True, tokenize=False)
    chat_ids = tok(chat_text, add_special_tokens=False)["input_ids"]
    chat = {"messages": CHAT_MESSAGES, "add_generation_prompt": True, "text": chat_text,
            "input_ids": chat_ids, **score(model, chat_ids)}
    print(f"chat n={len(chat_ids)} top10={chat['last_top10_ids']} -> {tok.decode(chat['last_top10_ids'][:3])!r}")
    with open(os.path.join(OUT, "golden.json"), "w") as f:
        json.dump({"model": "SmolLM2-135M-Instruct.Q4_1.gguf dequantized to float32 (gguf_to_hf.py)",
                   "texts": TEXTS, "cases": cases, "chat": chat}, f, indent=1, ensure_ascii=False)
        f.write("\n")

    tok_cases = []
    for text in TOKENIZER_TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        decoded = tok.decode(ids, skip_special_tokens=False)
        # the raw `tokenizers` decode must agree (no clean-up of spaces by transformers)
        assert decoded == tok.backend_tokenizer.decode(ids, skip_special_tokens=False), text
        if decoded != text:
            print(f"note: decode does not round-trip {text!r} -> {decoded!r}")
        tok_cases.append({"text": text, "ids": ids, "decoded": decoded})
    with open(os.path.join(OUT, "tokenizer_cases.json"), "w") as f:
        json.dump(tok_cases, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(tok_cases)} tokenizer cases, {sum(len(c['ids']) for c in tok_cases)} ids")


if __name__ == "__main__":
    main()
