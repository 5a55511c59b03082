//! Streaming detokenization: pieces emitted token by token never hold a broken UTF-8 character
//! and concatenate to the full decode, for emoji and CJK text with the demo model's byte-level
//! BPE tokenizer and with a SentencePiece-style tokenizer (byte fallback, `▁` spaces stripped
//! at the start of a decode). Also: `Generator::generate_text` streams exactly the decode of
//! its tokens.

mod common;

use common::{demo_generator, demo_tokenizer};
use ferrotune_hub::tokenizer::TokenizerBundle;
use ferrotune_infer::{GenerationParams, StreamDecoder};

const TEXTS: &[&str] = &[
    "Hello 😀 world! 👨‍👩‍👧‍👦 family, 🇫🇷 flag, 🤖🚀",
    "日本語のテキスト、中文文本：你好，世界！한국어 텍스트",
    "naïve café — “quotes” … 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and e\u{301} combining",
    "mixed 漢字 and emoji 🍣🍜 in one sentence 🙂",
];

/// Streams `ids` one at a time; returns the pieces and how many pushes held text back.
fn stream(tok: &TokenizerBundle, ids: &[u32], skip_special: bool) -> (Vec<String>, usize) {
    let mut dec = StreamDecoder::new(tok, skip_special);
    let mut pieces = Vec::new();
    let mut held = 0;
    for &id in ids {
        match dec.push(id).unwrap() {
            Some(p) => pieces.push(p),
            None => held += 1,
        }
    }
    pieces.extend(dec.finish().unwrap());
    (pieces, held)
}

#[test]
fn byte_level_bpe_pieces_are_whole_characters_and_concatenate_to_the_decode() {
    let tok = demo_tokenizer();
    let mut total_held = 0;
    for text in TEXTS {
        let ids = tok.encode(text, false).unwrap();
        let full = tok.decode(&ids, false).unwrap();
        assert_eq!(&full, text, "round trip");
        let (pieces, held) = stream(&tok, &ids, false);
        for p in &pieces {
            assert!(
                !p.contains('\u{FFFD}'),
                "broken character in piece {p:?} of {text:?}"
            );
        }
        assert_eq!(pieces.concat(), full, "{text:?}");
        total_held += held;
        // Decoding each token alone breaks characters: the test above is not vacuous.
        let naive: String = ids
            .iter()
            .map(|&id| tok.decode(&[id], false).unwrap())
            .collect();
        assert!(
            naive.contains('\u{FFFD}'),
            "{text:?} has no multi-token character"
        );
    }
    assert!(total_held > 0, "no token was ever held back");
}

#[test]
fn special_tokens_are_skipped_or_kept_as_asked() {
    let tok = demo_tokenizer();
    let mut ids = tok.encode("你好 😀", false).unwrap();
    let eos = tok.eos_token_id().unwrap();
    ids.push(eos);
    let (kept, _) = stream(&tok, &ids, false);
    assert_eq!(kept.concat(), "你好 😀<|im_end|>");
    let (skipped, _) = stream(&tok, &ids, true);
    assert_eq!(skipped.concat(), "你好 😀");
}

/// A SentencePiece-style tokenizer: `▁` marks spaces, the decoder strips the leading one, and
/// characters outside the vocabulary fall back to byte tokens `<0xNN>`.
fn sentencepiece_tokenizer(dir: &std::path::Path) -> TokenizerBundle {
    let mut vocab = serde_json::Map::new();
    for (i, t) in ["<unk>", "<s>", "</s>"].iter().enumerate() {
        vocab.insert((*t).into(), i.into());
    }
    for b in 0..=255u32 {
        vocab.insert(format!("<0x{b:02X}>"), (3 + b).into());
    }
    let pieces = [
        "▁", "H", "e", "l", "o", "w", "r", "d", "你", "好", "!", "▁H", "▁He", "ll", "▁Hell",
        "▁Hello", "▁w", "▁wo", "▁wor", "▁worl", "▁world", "▁你",
    ];
    for (i, p) in pieces.iter().enumerate() {
        vocab.insert((*p).into(), (259 + i).into());
    }
    let merges = [
        "▁ H",
        "▁H e",
        "l l",
        "▁He ll",
        "▁Hell o",
        "▁ w",
        "▁w o",
        "▁wo r",
        "▁wor l",
        "▁worl d",
        "▁ 你",
    ];
    let special = |id: u32, content: &str| {
        serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true})
    };
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null,
        "added_tokens": [special(0, "<unk>"), special(1, "<s>"), special(2, "</s>")],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
        "pre_tokenizer": null,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
            {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]},
        "model": {"type": "BPE", "dropout": null, "unk_token": "<unk>",
            "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": true,
            "byte_fallback": true, "ignore_merges": false, "vocab": vocab, "merges": merges}
    });
    std::fs::write(dir.join("tokenizer.json"), json.to_string()).unwrap();
    TokenizerBundle::from_hf_dir(dir).unwrap()
}

#[test]
fn sentencepiece_spaces_and_byte_fallback_stream_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let tok = sentencepiece_tokenizer(dir.path());
    let text = "Hello world 你好 😀 Hello!";
    let ids = tok.encode(text, false).unwrap();
    let full = tok.decode(&ids, false).unwrap();
    assert_eq!(full, text);
    // 😀 is four byte-fallback tokens.
    assert!(
        ids.windows(4)
            .any(|w| w == [3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80]),
        "{ids:?}"
    );
    let (pieces, held) = stream(&tok, &ids, false);
    assert_eq!(pieces.concat(), full);
    assert!(
        held >= 3,
        "the emoji's first three bytes must be held back, held {held}"
    );
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    // Decoding token by token loses the spaces the decoder strips at the start of each decode.
    let naive: String = ids
        .iter()
        .map(|&id| tok.decode(&[id], false).unwrap())
        .collect();
    assert!(naive.starts_with("Helloworld"), "{naive:?}");
}

#[test]
fn generate_text_streams_the_decode_of_its_tokens() {
    let generator = demo_generator();
    let tok = generator.tokenizer();
    let prompt = tok
        .encode(
            "<|im_start|>user\nReply with three emoji and the Chinese word for cat.<|im_end|>\n<|im_start|>assistant\n",
            false,
        )
        .unwrap();
    let mut pieces = Vec::new();
    let out = generator
        .generate_text(&prompt, &GenerationParams::greedy(24), &mut |p| {
            pieces.push(p.to_string())
        })
        .unwrap();
    let full = tok.decode(&out.generation.token_ids, true).unwrap();
    println!("{full:?}");
    assert_eq!(out.text, full);
    assert_eq!(pieces.concat(), full);
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')));
}
