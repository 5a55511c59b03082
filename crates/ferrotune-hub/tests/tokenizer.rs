//! Tokenizers from GGUF metadata and from HF folders, against the Python `tokenizers` reference.

mod common;

use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::tokenizer::TokenizerBundle;
use serde_json::Value;

struct Case {
    text: String,
    ids: Vec<u32>,
    decoded: String,
}

fn cases() -> Vec<Case> {
    let path = common::fixture("smollm2/tokenizer_cases.json");
    let json: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    json.as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            text: c["text"].as_str().unwrap().to_string(),
            ids: c["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i.as_u64().unwrap() as u32)
                .collect(),
            decoded: c["decoded"].as_str().unwrap().to_string(),
        })
        .collect()
}

fn check_cases(tok: &TokenizerBundle, label: &str) {
    let cases = cases();
    assert_eq!(cases.len(), 40);
    for case in &cases {
        let ids = tok.encode(&case.text, false).unwrap();
        assert_eq!(ids, case.ids, "{label}: ids of {:?}", case.text);
        let decoded = tok.decode(&ids, false).unwrap();
        assert_eq!(decoded, case.decoded, "{label}: decode of {:?}", case.text);
        // add_bos_token is false for the demo model, so special tokens change nothing.
        assert_eq!(
            tok.encode(&case.text, true).unwrap(),
            case.ids,
            "{label}: {:?}",
            case.text
        );
    }
}

#[test]
fn gguf_tokenizer_matches_python_reference() {
    let file = GgufFile::open(&common::demo_gguf()).unwrap();
    let tok = TokenizerBundle::from_gguf(&file).unwrap();
    check_cases(&tok, "from_gguf");

    for (token, id) in [("<|im_start|>", 1), ("<|im_end|>", 2), ("<|endoftext|>", 0)] {
        assert_eq!(tok.token_to_id(token), Some(id), "{token}");
        assert_eq!(
            tok.encode(token, false).unwrap(),
            [id],
            "{token} is one special id"
        );
    }
    assert_eq!(tok.bos_token.as_deref(), Some("<|im_start|>"));
    assert_eq!(tok.eos_token.as_deref(), Some("<|im_end|>"));
    assert_eq!(tok.pad_token.as_deref(), Some("<|im_end|>"));
    assert_eq!(tok.unk_token.as_deref(), Some("<|endoftext|>"));
    assert_eq!(
        (tok.bos_token_id(), tok.eos_token_id(), tok.pad_token_id()),
        (Some(1), Some(2), Some(2))
    );
    assert!(!tok.add_bos_token && !tok.add_eos_token);
    assert_eq!(tok.model_max_length, Some(8192));
    assert_eq!(
        tok.chat_template.as_deref(),
        Some(file.get_str("tokenizer.chat_template").unwrap())
    );
    assert_eq!(tok.tokenizer.get_vocab_size(true), 49152);
    // skip_special_tokens drops the chat markers.
    let ids = tok.encode("<|im_start|>user\nHi<|im_end|>", false).unwrap();
    assert_eq!(tok.decode(&ids, true).unwrap(), "user\nHi");
}

/// The rebuilt tokenizer serializes to the same normalizer, pre-tokenizer, model, decoder and
/// added tokens as the `tokenizer.json` gguf_to_hf.py writes with Python `tokenizers`.
#[test]
fn gguf_tokenizer_json_equals_gguf_to_hf_output() {
    let file = GgufFile::open(&common::demo_gguf()).unwrap();
    let ours = TokenizerBundle::from_gguf(&file).unwrap();
    let ours: Value = serde_json::from_str(&ours.tokenizer.to_string(false).unwrap()).unwrap();
    let path = common::demo_hf_tokenizer_dir().join("tokenizer.json");
    let theirs: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for key in [
        "normalizer",
        "pre_tokenizer",
        "model",
        "decoder",
        "added_tokens",
    ] {
        assert!(
            ours[key] == theirs[key],
            "`{key}` differs:\nours:   {:.300}\ntheirs: {:.300}",
            ours[key].to_string(),
            theirs[key].to_string()
        );
    }
}

#[test]
fn hf_dir_tokenizer_matches_gguf_tokenizer() {
    let dir = common::demo_hf_tokenizer_dir();
    let tok = TokenizerBundle::from_hf_dir(&dir).unwrap();
    check_cases(&tok, "from_hf_dir");
    assert_eq!(tok.bos_token.as_deref(), Some("<|im_start|>"));
    assert_eq!(tok.eos_token_id(), Some(2));
    assert_eq!(tok.model_max_length, Some(8192));
    let file = GgufFile::open(&common::demo_gguf()).unwrap();
    assert_eq!(
        tok.chat_template.as_deref(),
        file.get_str_opt("tokenizer.chat_template").unwrap()
    );
    assert!(tok
        .additional_special_tokens
        .contains(&"<|im_start|>".to_string()));
}

/// Copies the demo tokenizer.json into a temp folder with the given extra files.
fn hf_dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        common::demo_hf_tokenizer_dir().join("tokenizer.json"),
        dir.path().join("tokenizer.json"),
    )
    .unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

#[test]
fn hf_config_forms_and_template_files() {
    // Special tokens as AddedToken objects, a template list, add_bos_token.
    let config = r#"{
        "bos_token": {"content": "<|im_start|>", "lstrip": false},
        "eos_token": "<|im_end|>",
        "add_bos_token": true,
        "add_eos_token": true,
        "model_max_length": 1000000000000000019884624838656,
        "chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    }"#;
    let dir = hf_dir_with(&[("tokenizer_config.json", config)]);
    let tok = TokenizerBundle::from_hf_dir(dir.path()).unwrap();
    assert_eq!(tok.bos_token.as_deref(), Some("<|im_start|>"));
    assert_eq!(tok.chat_template.as_deref(), Some("D"));
    assert_eq!(tok.model_max_length, None);
    assert_eq!(tok.encode("Hello world", true).unwrap(), [1, 19556, 905, 2]);
    assert_eq!(tok.encode("Hello world", false).unwrap(), [19556, 905]);

    // chat_template.jinja wins over chat_template.json, which wins over the config.
    let dir = hf_dir_with(&[
        ("tokenizer_config.json", r#"{"chat_template": "C"}"#),
        ("chat_template.json", r#"{"chat_template": "J"}"#),
    ]);
    assert_eq!(
        TokenizerBundle::from_hf_dir(dir.path())
            .unwrap()
            .chat_template
            .as_deref(),
        Some("J")
    );
    std::fs::write(dir.path().join("chat_template.jinja"), "{{ messages }}").unwrap();
    assert_eq!(
        TokenizerBundle::from_hf_dir(dir.path())
            .unwrap()
            .chat_template
            .as_deref(),
        Some("{{ messages }}")
    );

    // No tokenizer_config.json at all: no special tokens, nothing added.
    let dir = hf_dir_with(&[]);
    let tok = TokenizerBundle::from_hf_dir(dir.path()).unwrap();
    assert_eq!(
        (tok.bos_token.as_deref(), tok.chat_template.as_deref()),
        (None, None)
    );
    assert_eq!(tok.encode("Hello world", true).unwrap(), [19556, 905]);
}

#[test]
fn hf_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let msg = TokenizerBundle::from_hf_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tokenizer.json") && msg.contains("not found"),
        "{msg}"
    );

    let dir = hf_dir_with(&[("tokenizer_config.json", r#"{"bos_token": 5}"#)]);
    let msg = TokenizerBundle::from_hf_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tokenizer_config.json") && msg.contains("`bos_token`"),
        "{msg}"
    );

    let dir = hf_dir_with(&[("tokenizer_config.json", "{not json")]);
    let msg = TokenizerBundle::from_hf_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("tokenizer_config.json") && msg.contains("invalid json"),
        "{msg}"
    );

    let dir = hf_dir_with(&[(
        "tokenizer_config.json",
        r#"{"add_bos_token": true, "bos_token": "<nope>"}"#,
    )]);
    let msg = TokenizerBundle::from_hf_dir(dir.path())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("<nope>") && msg.contains("not in the vocabulary"),
        "{msg}"
    );
}

/// A tiny SentencePiece-style (`tokenizer.ggml.model = "llama"`) vocabulary with scores and no
/// merges, so merges are derived from the scores.
///
/// The expected ids come from transformers 5.24's GGUF tokenizer conversion, run on the same
/// vocabulary (`/work/pyref/venv`):
/// ```python
/// from transformers.integrations.gguf.gguf_tokenizer_mapping import convert_gguf_tokenizer
/// tok, _ = convert_gguf_tokenizer("llama", dict(tokenizer_type="llama", tokens=tokens,
///     scores=scores, token_type=types, bos_token_id=1, eos_token_id=2, unk_token_id=0))
/// tok.encode(text, add_special_tokens=False).ids; tok.decode(ids, skip_special_tokens=False)
/// ```
#[test]
fn gguf_sentencepiece_tokenizer_matches_transformers() {
    use ferrotune_hub::gguf::GgufValue as V;
    let pieces = [
        "\u{2581}",
        "h",
        "e",
        "l",
        "o",
        "w",
        "r",
        "d",
        "\u{2581}h",
        "el",
        "ll",
        "lo",
        "he",
        "hel",
        "hell",
        "hello",
        "\u{2581}hello",
        "\u{2581}w",
        "or",
        "wor",
        "world",
        "\u{2581}world",
        "ld",
    ];
    let mut tokens: Vec<String> = vec!["<unk>".into(), "<s>".into(), "</s>".into()];
    tokens.extend((0..=255u8).map(|b| format!("<0x{b:02X}>")));
    tokens.extend(pieces.iter().map(|p| p.to_string()));
    let mut scores = vec![0.0f32; 259];
    scores.extend((0..pieces.len()).map(|i| -(i as f32)));
    let mut types = vec![2i32, 3, 3];
    types.extend(std::iter::repeat_n(6, 256));
    types.extend(std::iter::repeat_n(1, pieces.len()));
    let w = common::GgufWriter::default()
        .kv("general.architecture", V::String("llama".into()))
        .kv("tokenizer.ggml.model", V::String("llama".into()))
        .kv(
            "tokenizer.ggml.tokens",
            V::Array(tokens.into_iter().map(V::String).collect()),
        )
        .kv(
            "tokenizer.ggml.scores",
            V::Array(scores.into_iter().map(V::F32).collect()),
        )
        .kv(
            "tokenizer.ggml.token_type",
            V::Array(types.into_iter().map(V::I32).collect()),
        )
        .kv("tokenizer.ggml.bos_token_id", V::U32(1))
        .kv("tokenizer.ggml.eos_token_id", V::U32(2))
        .kv("tokenizer.ggml.unknown_token_id", V::U32(0));
    let dir = tempfile::tempdir().unwrap();
    let file = GgufFile::open(&w.write(dir.path(), "spm.gguf")).unwrap();
    let tok = TokenizerBundle::from_gguf(&file).unwrap();
    let cases: [(&str, &[u32], &str); 8] = [
        (
            "hello world",
            &[267, 268, 270, 276, 277, 281],
            "hello world",
        ),
        (" hello", &[267, 268, 270], "hello"),
        (
            "hello  world",
            &[267, 268, 270, 259, 276, 277, 281],
            "hello  world",
        ),
        ("h\u{e9}llo", &[267, 198, 172, 269, 263], "h\u{e9}llo"),
        ("<s>hello</s>", &[1, 274, 2], "<s>hello</s>"),
        ("", &[], ""),
        (
            "world hello\n",
            &[276, 277, 281, 267, 268, 270, 13],
            "world hello\n",
        ),
        ("wold", &[276, 263, 281], "wold"),
    ];
    for (text, ids, decoded) in cases {
        assert_eq!(tok.encode(text, false).unwrap(), ids, "{text:?}");
        assert_eq!(tok.decode(ids, false).unwrap(), decoded, "{text:?}");
    }
    // llama vocabularies add BOS unless the file says otherwise.
    assert!(tok.add_bos_token);
    assert_eq!(tok.encode("hello", true).unwrap(), [1, 267, 268, 270]);
    assert_eq!((tok.bos_token_id(), tok.eos_token_id()), (Some(1), Some(2)));
    assert_eq!(tok.unk_token.as_deref(), Some("<unk>"));
}

#[test]
fn gguf_tokenizer_errors() {
    use ferrotune_hub::gguf::GgufValue as V;
    let dir = tempfile::tempdir().unwrap();
    let base = || {
        common::GgufWriter::default()
            .kv("general.architecture", V::String("llama".into()))
            .kv(
                "tokenizer.ggml.tokens",
                V::Array(["a", "b", "ab"].map(|t| V::String(t.into())).to_vec()),
            )
            .kv(
                "tokenizer.ggml.merges",
                V::Array(vec![V::String("a b".into())]),
            )
    };
    let open =
        |w: common::GgufWriter, name: &str| GgufFile::open(&w.write(dir.path(), name)).unwrap();

    let file = open(
        base().kv("tokenizer.ggml.model", V::String("rwkv".into())),
        "m.gguf",
    );
    let msg = TokenizerBundle::from_gguf(&file).unwrap_err().to_string();
    assert!(
        msg.contains("m.gguf") && msg.contains("\"rwkv\"") && msg.contains("gpt2, llama"),
        "{msg}"
    );

    let w = base()
        .kv("tokenizer.ggml.model", V::String("gpt2".into()))
        .kv("tokenizer.ggml.pre", V::String("mystery".into()));
    let msg = TokenizerBundle::from_gguf(&open(w, "p.gguf"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("p.gguf") && msg.contains("\"mystery\"") && msg.contains("smollm, qwen2"),
        "{msg}"
    );

    let w = base()
        .kv("tokenizer.ggml.model", V::String("gpt2".into()))
        .kv("tokenizer.ggml.bos_token_id", V::U32(7));
    let msg = TokenizerBundle::from_gguf(&open(w, "b.gguf"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("bos_token_id") && msg.contains("outside the vocabulary of 3"),
        "{msg}"
    );

    let file = open(base(), "n.gguf");
    let msg = TokenizerBundle::from_gguf(&file).unwrap_err().to_string();
    assert!(
        msg.contains("n.gguf") && msg.contains("tokenizer.ggml.model"),
        "{msg}"
    );
}
