//! Helpers shared by the fixture tests: the demo tokenizer, and LLaMA-Factory fixture cases
//! (`fixtures/data/<case>.{yaml,jsonl}`) loaded through the `dataset` module.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::{Path, PathBuf};

use ferrotune_config::Config;
use ferrotune_data::dataset::{load_dataset, ConversationRecord};
use ferrotune_data::processor::Sample;
use ferrotune_data::template::Template;
use ferrotune_hub::gguf::GgufFile;
use ferrotune_hub::tokenizer::TokenizerBundle;
use serde::de::DeserializeOwned;
use serde_json::Value as Json;

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The demo model's tokenizer; fails (never skips) when the GGUF has not been fetched.
pub fn demo_tokenizer() -> TokenizerBundle {
    let path = std::env::var_os("FERROTUNE_DEMO_GGUF")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    let gguf = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e} (run scripts/fetch_model.sh)"));
    TokenizerBundle::from_gguf(&gguf).expect("demo tokenizer")
}

/// One fixture case: its config, its converted examples, the fixed template and tokenizer,
/// and LLaMA-Factory's rows.
pub struct Case {
    /// The case name, for messages.
    pub name: String,
    /// The fixture YAML parsed as a ferrotune config.
    pub cfg: Config,
    /// The training examples as the `dataset` module loads them.
    pub records: Vec<ConversationRecord>,
    /// The case's template.
    pub template: Template,
    /// The demo tokenizer after `fix_special_tokens`.
    pub tok: TokenizerBundle,
    /// LLaMA-Factory's rows (`<case>.jsonl`).
    pub golden: Vec<Json>,
}

impl Case {
    /// Loads `fixtures/data/<name>.yaml` and `.jsonl`; the YAML's `dataset_dir: llamafactory`
    /// is the shared demo data folder beside the repository.
    pub fn load(name: &str) -> Case {
        let dir = root().join("fixtures/data");
        let yaml_path = dir.join(format!("{name}.yaml"));
        let cfg = Config::from_yaml_file(&yaml_path, &[])
            .unwrap_or_else(|e| panic!("{name}: fixture config: {e}"));
        assert_eq!(cfg.data.dataset_dir, "llamafactory", "{name}: dataset_dir");
        let data_dir = root().join("../shared/data/llamafactory");
        let records = load_dataset(&cfg, &cfg.data.dataset, &data_dir)
            .unwrap_or_else(|e| panic!("{name}: loading the dataset: {e}"));
        let mut tok = demo_tokenizer();
        let template =
            Template::get(cfg.data.template.as_deref().expect("template")).expect("template");
        template.fix_special_tokens(&mut tok).expect("fix tokens");
        let golden = std::fs::read_to_string(dir.join(format!("{name}.jsonl")))
            .expect("case jsonl")
            .lines()
            .map(|l| serde_json::from_str(l).expect("jsonl"))
            .collect();
        Case {
            name: name.to_owned(),
            cfg,
            records,
            template,
            tok,
            golden,
        }
    }

    /// `cutoff_len` as LLaMA-Factory's `DataArguments.__post_init__` leaves it.
    pub fn effective_cutoff_len(&self) -> usize {
        self.cfg.effective_cutoff_len
    }

    /// The examples as processor input.
    pub fn samples(&self) -> Vec<Sample<'_>> {
        self.records.iter().map(sample).collect()
    }

    /// Column `key` of golden row `row`.
    pub fn column<T: DeserializeOwned>(&self, row: usize, key: &str) -> T {
        let value = self.golden[row]
            .get(key)
            .unwrap_or_else(|| panic!("{}: row {row} has no `{key}`", self.name));
        serde_json::from_value(value.clone())
            .unwrap_or_else(|e| panic!("{}: row {row} `{key}`: {e}", self.name))
    }
}

/// A converted record as processor input.
pub fn sample(record: &ConversationRecord) -> Sample<'_> {
    Sample {
        prompt: &record.prompt,
        response: &record.response,
        system: Some(&record.system),
        tools: Some(&record.tools),
    }
}

/// Asserts `ours == want` for one column, naming the case, the row and the first difference.
pub fn assert_column<T: PartialEq + std::fmt::Debug>(
    case: &str,
    row: usize,
    key: &str,
    ours: &[T],
    want: &[T],
) {
    if ours == want {
        return;
    }
    let first = ours.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{case} row {row} `{key}` differs: lengths {} (ours) vs {} (LLaMA-Factory), first \
         difference at {first:?}\nours: {ours:?}\nwant: {want:?}",
        ours.len(),
        want.len()
    );
}
