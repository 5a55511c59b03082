//! Every built-in template encodes one fixed multi-turn conversation (with a system prompt)
//! into exactly LLaMA-Factory 0.9.5's ids (fixtures/data/templates_multiturn.json, from
//! tools/make_template_fixtures.py), and the ChatML-style templates give exactly the ids of
//! the demo model's own Jinja chat template rendered by transformers.

use std::path::{Path, PathBuf};

use ferrotune_data::message::{Message, Role};
use ferrotune_data::template::{Template, TEMPLATE_NAMES};
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::tokenizer::TokenizerBundle;
use serde_json::Value as Json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn demo_tokenizer() -> TokenizerBundle {
    static TOK: std::sync::OnceLock<TokenizerBundle> = std::sync::OnceLock::new();
    TOK.get_or_init(load_demo_tokenizer).clone()
}

fn load_demo_tokenizer() -> TokenizerBundle {
    let path = std::env::var_os("FERROTUNE_DEMO_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let gguf = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e} (run scripts/fetch_model.sh)"));
    TokenizerBundle::from_gguf(&gguf).expect("demo tokenizer")
}

fn fixture() -> Json {
    let p = root().join("fixtures/data/templates_multiturn.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn messages(doc: &Json) -> Vec<Message> {
    doc["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let role = match m["role"].as_str().unwrap() {
                "user" => Role::User,
                "assistant" => Role::Assistant,
                other => panic!("role {other}"),
            };
            Message::new(role, m["content"].as_str().unwrap())
        })
        .collect()
}

fn ids(v: &Json) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

/// Encodes the fixture conversation with a fresh tokenizer fixed up by the template.
fn encode(name: &str, doc: &Json) -> Vec<(Vec<u32>, Vec<u32>)> {
    let template = Template::get(name).unwrap();
    let mut tok = demo_tokenizer();
    template.fix_special_tokens(&mut tok).unwrap();
    let system = doc["system"].as_str();
    template
        .encode_multiturn(&tok, &messages(doc), system, None, false)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_template_matches_llamafactory_multiturn_ids() {
    let doc = fixture();
    let cases = doc["cases"].as_object().unwrap();
    let mut checked = 0;
    for name in TEMPLATE_NAMES {
        let Some(case) = cases.get(name) else {
            continue;
        };
        assert!(case.get("error").is_none(), "{name}: {}", case["error"]);
        let want: Vec<(Vec<u32>, Vec<u32>)> = case["pairs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (ids(&p[0]), ids(&p[1])))
            .collect();
        assert_eq!(encode(name, &doc), want, "template `{name}`");
        checked += 1;
    }
    // Every template the fixture holds was compared.
    assert_eq!(checked, cases.len());
    assert!(checked >= 25, "only {checked} templates checked");
}

#[test]
fn chatml_templates_equal_the_models_own_jinja_template() {
    let doc = fixture();
    let want = ids(&doc["jinja_smollm2_ids"]);
    for name in ["smollm2", "chatml"] {
        let flat: Vec<u32> = encode(name, &doc)
            .into_iter()
            .flat_map(|(p, a)| p.into_iter().chain(a))
            .collect();
        assert_eq!(
            flat, want,
            "template `{name}` vs the model's Jinja template"
        );
    }
}
