"""SentencePiece-style tokenizer fixture for the GGUF export of Llama 2 / Mistral / Gemma-like
tokenizers (BPE with byte fallback, `▁` word marker, `<0xNN>` byte tokens), and its check
against llama.cpp.

Two steps, run from the repository root:

    # 1. writes fixtures/export/spm_tokenizer/{tokenizer.json,tokenizer_config.json} and
    #    fixtures/export/spm_tokenizer_ids.json (strings and the HF `tokenizers` ids)
    /work/pyref/venv/bin/python tools/make_spm_tokenizer_fixture.py make

    # 2. the Rust test exports a tiny llama with that tokenizer and keeps the GGUF ...
    FERROTUNE_EXPORT_CHECK_DIR=/tmp/export_check \
        cargo test -p ferrotune-export --test gguf_export sentencepiece
    #    ... which gguf-py and llama.cpp (llama-cpp-python, vocab only) then read; llama.cpp's
    #    ids are compared with the HF ids and stored in the fixture as `llama_cpp_ids`
    /work/pyref/venv/bin/python tools/make_spm_tokenizer_fixture.py check \
        /tmp/export_check/spm/model-f32.gguf

Step 1: a SentencePiece BPE model (vocab 420, byte_fallback, identity normalization, digits
split, no whitespace collapsing) is trained on the short corpus below with one thread (the
result is deterministic), converted to `tokenizer.json` by transformers' `LlamaTokenizer`
(the same conversion that produced the Hub's Llama 2 / Mistral tokenizer.json files: Metaspace
pre-tokenizer with `prepend_scheme: first`, merges generated from the piece scores), then two
special tokens (`<|im_start|>`, `<|im_end|>`) and one plain added token (`<tool>`) are added so
that the export writes control and user-defined token types. `tokenizer.model` is not kept:
the export must work from `tokenizer.json` alone. The SentencePiece ids of each string are
printed next to the HF ids for information (they differ where transformers' conversion
differs from SentencePiece, e.g. a leading space).

The fixture also holds `hf_legacy_ids`: the HF ids of the same tokenizer in the older `legacy`
form (see `legacy_form`), which is how llama.cpp's SentencePiece tokenizer treats text: it puts
a `▁` before every text segment, also one that already starts with a space or follows an added
token, where the Metaspace `first` form does not. Step 2 exits 1 when gguf-py's reading differs
from what is expected or llama.cpp's ids differ from `hf_legacy_ids` on any string; it prints
on how many strings they also equal `hf_ids` (all but those two cases).
"""

import io
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOK_DIR = ROOT / "fixtures/export/spm_tokenizer"
IDS = ROOT / "fixtures/export/spm_tokenizer_ids.json"
LLAMA_PYTHON = "/work/pyref/llama/bin/python"

CORPUS = """The quick brown fox jumps over the lazy dog.
Hello world! Hello again, world. Hello there.
Fine-tuning language models is fun; training them takes time and patience.
The model reads the tokens, then the model writes the answer.
Le café est très bon. Élève, déjà, naïve, façon, où, été, garçon.
日本語のテキストです。東京は大きい。
Numbers: 123 4567 89, tabs\tand  double  spaces,   triple too.
def main():
    return 42
"""

# Strings whose ids are compared: ASCII, spaces (leading, trailing, runs), newlines and tabs,
# accents, CJK (in the vocabulary and outside it), emoji (byte fallback), added tokens.
STRINGS = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "the model writes the answer",
    " leading space",
    "trailing space ",
    "double  spaces and   triple",
    "line one\nline two\n\nend\n",
    "tabs\tand\ttabs",
    "def main():\n    return 42",
    "Le café est très bon, déjà naïve",
    "Élève ÀÉÎÕÜ façon",
    "日本語のテキストです。",
    "東京は大きい、中文也可以",
    "emoji 🙂🚀 and 👍🏽!",
    "Numbers 123 4567 89",
    "",
    " ",
    "\n",
    "a <tool>",
    "ok<unk>",
    "<|im_start|>user",
    "a<tool>b",
    "x<unk>y",
    "Hi<|im_end|>",
    "<|im_start|>",
]


def make() -> int:
    import sentencepiece as spm
    from tokenizers import Tokenizer
    from transformers import AddedToken, LlamaTokenizer
    import tempfile

    lines = [line for line in (CORPUS * 3).split("\n") if line]
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=proto, model_type="bpe", vocab_size=420,
        byte_fallback=True, character_coverage=1.0, num_threads=1, split_digits=True,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, add_dummy_prefix=True,
        remove_extra_whitespaces=False, normalization_rule_name="identity",
        allow_whitespace_only_pieces=True, minloglevel=2)
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "tokenizer.model").write_bytes(proto.getvalue())
        tok = LlamaTokenizer.from_pretrained(tmp, legacy=False)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>", "<|im_end|>"]})
    tok.add_tokens([AddedToken("<tool>", special=False, normalized=False)])
    TOK_DIR.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(TOK_DIR)
    # Only tokenizer.json and tokenizer_config.json are kept; the config states add_bos_token /
    # add_eos_token as the Hub's Llama 2 and Mistral configs do.
    for extra in ("special_tokens_map.json", "chat_template.jinja", "tokenizer.model"):
        (TOK_DIR / extra).unlink(missing_ok=True)
    cfg_path = TOK_DIR / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    for key in ("is_local", "local_files_only", "extra_special_tokens"):
        cfg.pop(key, None)
    cfg["add_bos_token"] = True
    cfg["add_eos_token"] = False
    cfg["additional_special_tokens"] = ["<|im_start|>", "<|im_end|>"]
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True, ensure_ascii=False) + "\n")

    hf = Tokenizer.from_file(str(TOK_DIR / "tokenizer.json"))
    hf_ids = [hf.encode(s, add_special_tokens=False).ids for s in STRINGS]
    legacy = legacy_form(TOK_DIR / "tokenizer.json")
    legacy_ids = [legacy.encode(s, add_special_tokens=False).ids for s in STRINGS]
    sp_ids = [sp.encode(s) for s in STRINGS]
    for s, ids, lids, sids in zip(STRINGS, hf_ids, legacy_ids, sp_ids):
        note = "" if lids == ids else f"   (legacy form: {lids})"
        note += "" if sids == ids else f"   (sentencepiece: {sids})"
        print(f"{s!r}: {ids}{note}")
    fixture = {"strings": STRINGS, "hf_ids": hf_ids, "hf_legacy_ids": legacy_ids}
    if IDS.is_file():
        old = json.loads(IDS.read_text())
        if old.get("strings") == STRINGS and old.get("hf_ids") == hf_ids and "llama_cpp_ids" in old:
            fixture["llama_cpp_ids"] = old["llama_cpp_ids"]
    IDS.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    vocab = hf.get_vocab_size(with_added_tokens=True)
    print(f"wrote {TOK_DIR} (vocab {vocab}) and {IDS}")
    return 0


def legacy_form(path: Path):
    """The fixture tokenizer in the older (transformers `legacy=True`) form of the Hub's Llama 2
    and Mistral tokenizer.json files: no pre-tokenizer, normalizer `Prepend("▁")` then
    `Replace(" ", "▁")`, applied to every text segment between added tokens. llama.cpp's
    SentencePiece tokenizer behaves this way (a `▁` before every segment, even one that starts
    with a space), which differs from the Metaspace `prepend_scheme: first` form for text that
    starts with a space or follows an added token."""
    from tokenizers import Tokenizer

    j = json.loads(path.read_text())
    j["pre_tokenizer"] = None
    j["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    return Tokenizer.from_str(json.dumps(j))


def gguf_summary(path: Path) -> dict:
    """The tokenizer keys of `path` as gguf-py reads them."""
    import gguf

    r = gguf.GGUFReader(path)

    def scalar(key):
        f = r.fields.get(key)
        if f is None:
            return None
        v = f.parts[f.data[0]]
        return bytes(v).decode() if f.types[0] == gguf.GGUFValueType.STRING else v.tolist()[0]

    def array(key):
        f = r.fields.get(key)
        if f is None:
            return None
        if f.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode() for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]

    types = array("tokenizer.ggml.token_type")
    return {
        "model": scalar("tokenizer.ggml.model"),
        "pre": scalar("tokenizer.ggml.pre"),
        "tokens": array("tokenizer.ggml.tokens"),
        "scores": array("tokenizer.ggml.scores"),
        "types": types,
        "merges": len(array("tokenizer.ggml.merges") or []),
        "ids": {k: scalar(f"tokenizer.ggml.{k}_token_id") for k in ("bos", "eos", "unknown", "padding")},
        "add_bos": scalar("tokenizer.ggml.add_bos_token"),
        "add_eos": scalar("tokenizer.ggml.add_eos_token"),
        "add_space_prefix": scalar("tokenizer.ggml.add_space_prefix"),
    }


LLAMA_CPP_CODE = """
import json, sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], vocab_only=True, verbose=False)
strings = json.loads(sys.stdin.read())
print(json.dumps([llm.tokenize(s.encode("utf-8"), add_bos=False, special=True) for s in strings]))
"""


def check(path: Path) -> int:
    from tokenizers import Tokenizer

    fixture = json.loads(IDS.read_text())
    hf = Tokenizer.from_file(str(TOK_DIR / "tokenizer.json"))
    failed = 0
    s = gguf_summary(path)
    n = len(s["tokens"])
    counts = {t: s["types"].count(t) for t in sorted(set(s["types"]))}
    print(f"gguf-py: model {s['model']!r}, pre {s['pre']!r}, {n} tokens, {len(s['scores'])} scores, "
          f"{s['merges']} merges, types {counts}, ids {s['ids']}, add_bos {s['add_bos']}, "
          f"add_eos {s['add_eos']}, add_space_prefix {s['add_space_prefix']}")
    vocab = hf.get_vocab(with_added_tokens=True)
    expected = {
        "model": "llama", "pre": "default", "n": len(vocab), "scores": len(vocab),
        "tokens": [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])],
        "ids": {"bos": vocab["<s>"], "eos": vocab["</s>"], "unknown": vocab["<unk>"], "padding": vocab["</s>"]},
        "bytes": 256, "add_bos": True, "add_eos": False,
    }
    got = {
        "model": s["model"], "pre": s["pre"], "n": n, "scores": len(s["scores"]), "tokens": s["tokens"],
        "ids": s["ids"], "bytes": counts.get(6, 0), "add_bos": s["add_bos"], "add_eos": s["add_eos"],
    }
    for key, want in expected.items():
        if got[key] != want:
            print(f"  gguf-py {key}: {got[key] if key != 'tokens' else '...'} != expected "
                  f"{want if key != 'tokens' else '...'}")
            failed += 1

    out = subprocess.run([LLAMA_PYTHON, "-c", LLAMA_CPP_CODE, str(path)], input=json.dumps(fixture["strings"]),
                         capture_output=True, text=True, check=True)
    llama_ids = json.loads(out.stdout)
    same = same_legacy = 0
    for text, want, legacy, got_ids in zip(fixture["strings"], fixture["hf_ids"], fixture["hf_legacy_ids"],
                                           llama_ids):
        same += want == got_ids
        same_legacy += legacy == got_ids
        if want != got_ids:
            print(f"  differs from the Metaspace form {text!r}: hf {want}, llama.cpp {got_ids}, "
                  f"legacy form {'same' if legacy == got_ids else legacy}")
        if legacy != got_ids:
            failed += 1
    n = len(fixture["strings"])
    print(f"llama.cpp ids equal the HF ids on {same}/{n} strings (tokenizer.json as written, Metaspace "
          f"prepend_scheme first) and on {same_legacy}/{n} strings for its legacy form")
    fixture["llama_cpp_ids"] = llama_ids
    IDS.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {IDS}")
    return 1 if failed else 0


def main() -> int:
    if len(sys.argv) >= 2 and sys.argv[1] == "make":
        return make()
    if len(sys.argv) == 3 and sys.argv[1] == "check":
        return check(Path(sys.argv[2]))
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
