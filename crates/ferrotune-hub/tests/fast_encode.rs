//! The fast byte-level BPE encoder of `TokenizerBundle::encode` against `tokenizers` itself:
//! identical ids on the demo datasets, the tokenizer fixture cases, chat renders, every Unicode
//! code point and seeded random strings; and the fast path is really taken for the demo model.

mod common;

use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::tokenizer::TokenizerBundle;
use serde_json::Value;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::AddedToken;

fn demo() -> TokenizerBundle {
    let file = GgufFile::open(&common::demo_gguf()).unwrap();
    TokenizerBundle::from_gguf(&file).unwrap()
}

/// Asserts the fast ids equal `tokenizers`' ids, without and with special tokens.
fn check(tok: &TokenizerBundle, text: &str) {
    for special in [false, true] {
        let fast = tok.encode(text, special).unwrap();
        let reference = tok.tokenizer.encode_fast(text, special).unwrap();
        assert_eq!(
            fast,
            reference.get_ids(),
            "ids of {text:?} (add_special_tokens={special})"
        );
    }
}

/// Every string inside `value`, recursively (keys included).
fn strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings(v, out)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                strings(v, out);
            }
        }
        _ => {}
    }
}

/// Every string field of every row of every demo dataset, plus ChatML renders of each row's
/// strings in the SmolLM2 chat format (system, user, assistant turns).
fn dataset_texts() -> Vec<String> {
    let dir = common::workspace_root().join("../shared/data/llamafactory");
    let mut texts = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for path in names {
        let body = std::fs::read_to_string(&path).unwrap();
        let mut rows = Vec::new();
        match path.extension().and_then(|e| e.to_str()) {
            Some("json") => rows.push(serde_json::from_str::<Value>(&body).unwrap()),
            Some("jsonl") => {
                for line in body.lines().filter(|l| !l.trim().is_empty()) {
                    rows.push(serde_json::from_str::<Value>(line).unwrap());
                }
            }
            _ => {
                texts.push(body.clone());
                texts.extend(body.lines().map(str::to_owned));
            }
        }
        for row in rows.iter().flat_map(|r| match r {
            Value::Array(items) => items.clone(),
            other => vec![other.clone()],
        }) {
            let mut fields = Vec::new();
            strings(&row, &mut fields);
            let mut chat = String::from("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n");
            for (i, f) in fields.iter().enumerate() {
                let role = ["user", "assistant"][i % 2];
                chat.push_str(&format!("<|im_start|>{role}\n{f}<|im_end|>\n"));
            }
            chat.push_str("<|im_start|>assistant\n");
            texts.extend(fields);
            texts.push(chat);
        }
    }
    texts
}

#[test]
fn demo_tokenizer_takes_the_fast_path() {
    let tok = demo();
    assert!(tok.uses_fast_encoder());
    let hf = TokenizerBundle::from_hf_dir(&common::demo_hf_tokenizer_dir()).unwrap();
    assert!(hf.uses_fast_encoder());
}

#[test]
fn fast_equals_tokenizers_on_demo_datasets_and_fixture_cases() {
    let tok = demo();
    let texts = dataset_texts();
    assert!(texts.len() > 5000, "only {} dataset strings", texts.len());
    for text in &texts {
        check(&tok, text);
    }
    let cases = common::fixture("smollm2/tokenizer_cases.json");
    let cases: Value = serde_json::from_str(&std::fs::read_to_string(cases).unwrap()).unwrap();
    let cases = cases.as_array().unwrap();
    assert_eq!(cases.len(), 40);
    for case in cases {
        check(&tok, case["text"].as_str().unwrap());
    }
}

#[test]
fn fast_equals_tokenizers_on_every_code_point() {
    let tok = demo();
    // Every code point of planes 0-3 and 14 (all assigned ones); one in 61 of the unassigned
    // planes 4-13 and the private-use planes 15-16.
    let chars: Vec<char> = (0..=0x10FFFFu32)
        .filter(|&c| c < 0x40000 || (0xE0000..0xF0000).contains(&c) || c % 61 == 0)
        .filter_map(char::from_u32)
        .collect();
    for chunk in chars.chunks(512) {
        // Each code point alone, doubled, after a space, between letters/digits/quotes/tabs.
        let mut text = String::new();
        for &c in chunk {
            text.extend([
                c, c, ' ', c, 'a', c, '1', ' ', c, '\'', 's', c, '\t', c, '\n',
            ]);
        }
        check(&tok, &text);
    }
}

/// SplitMix64: a small seeded generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const PIECES: &[&str] = &[
    "a",
    "The",
    "word",
    "x",
    "Zürich",
    "naïve",
    "ﬁ",
    "e\u{301}",
    "\u{301}",
    "\u{20dd}",
    " ",
    "  ",
    "   ",
    "\t",
    "\t\t",
    "\n",
    "\r\n",
    "\n\n",
    "\u{a0}",
    "\u{3000}",
    "\u{2028}",
    "\u{85}",
    "0",
    "7",
    "42",
    "2024",
    "١٢",
    "½",
    "Ⅻ",
    "²",
    ".",
    ",",
    "!",
    "?!",
    "...",
    "'",
    "'s",
    "'t",
    "'re",
    "'ve",
    "'m",
    "'ll",
    "'d",
    "'S",
    "'LL",
    "\"",
    "(",
    ")",
    "{}",
    "[]",
    "<",
    ">",
    "</",
    "|",
    "-",
    "_",
    "#",
    "@",
    "$",
    "%",
    "€",
    "中文",
    "日本語",
    "한국어",
    "العربية",
    "עברית",
    "Ελληνικά",
    "Русский",
    "हिन्दी",
    "ไทย",
    "😀",
    "👩\u{200d}💻",
    "👍🏽",
    "🇫🇷",
    "\u{200b}",
    "\u{feff}",
    "\u{fffd}",
    "<|im_start|>",
    "<|im_end|>",
    "<|endoftext|>",
    "<repo_name>",
    "<file_sep>",
    "<|im_start",
    "im_end|>",
    "<<|im_end|>>",
    "\\n",
    "```",
    "    ",
    "def f(x):",
    "{\"name\": \"f\"}",
];

#[test]
fn fast_equals_tokenizers_on_random_strings() {
    let tok = demo();
    let mut rng = Rng(20240917);
    for _ in 0..4000 {
        let n = 1 + rng.next() % 24;
        let text: String = (0..n).map(|_| rng.pick(PIECES)).collect();
        check(&tok, &text);
    }
}

#[test]
fn changed_tokenizers_are_rebuilt_or_fall_back() {
    let mut tok = demo();
    let texts = [
        "say  foo  bar!",
        "foo",
        "x  FOO\t y",
        "<|im_start|>foo<|im_end|>",
        "",
    ];
    // Added tokens with lstrip/rstrip, special and not, normalized and not.
    tok.tokenizer.add_tokens(&[
        AddedToken::from("foo", false).lstrip(true).rstrip(true),
        AddedToken::from("FOO", false)
            .normalized(false)
            .rstrip(true),
    ]);
    tok.tokenizer
        .add_special_tokens(&[AddedToken::from("bar!", true).lstrip(true)]);
    assert!(tok.uses_fast_encoder());
    for text in texts {
        check(&tok, text);
    }
    // A post-processor that adds tokens around the sequence.
    let template = TemplateProcessing::builder()
        .try_single("<|im_start|> $A:0 <|im_end|>")
        .unwrap()
        .special_tokens(vec![("<|im_start|>", 1), ("<|im_end|>", 2)])
        .build()
        .unwrap();
    tok.tokenizer.with_post_processor(Some(template));
    for text in texts {
        check(&tok, text);
    }
    assert_eq!(tok.encode("", true).unwrap(), [1, 2]);
    // A single_word token is not handled by the fast encoder: `tokenizers` does it.
    let mut single = demo();
    single
        .tokenizer
        .add_tokens(&[AddedToken::from("ab", false).single_word(true)]);
    assert!(!single.uses_fast_encoder());
    for text in ["ab cab ab", "xab"] {
        check(&single, text);
    }
}
