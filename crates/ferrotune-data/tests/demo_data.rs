//! ferrotune's own demo data (`data/` at the repository root, written by
//! `tools/make_demo_dataset.py`): every dataset `data/dataset_info.json` lists loads through
//! [`load_dataset`] with all its rows converted, each conversation matches its raw row, and the
//! answers keep the house style the README's fine-tuning demo teaches.

use std::path::{Path, PathBuf};

use ferrotune_config::Config;
use ferrotune_data::dataset::{load_dataset, ConversationRecord, DatasetInfo, DatasetSource};
use ferrotune_data::message::Role;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data_dir() -> PathBuf {
    repo().join("data")
}

/// The raw rows of a file in `data/`.
fn raw_rows(file: &str) -> Vec<Value> {
    let path = data_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn load(name: &str) -> Vec<ConversationRecord> {
    let names = [name.to_string()];
    load_dataset(&Config::default(), &names, &data_dir()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn field<'a>(row: &'a Value, key: &str) -> &'a str {
    row.get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("row without `{key}`: {row}"))
}

#[test]
fn dataset_info_lists_both_demo_datasets() {
    let info = DatasetInfo::from_dir(&data_dir()).expect("data/dataset_info.json");
    let names: Vec<&str> = info.names().collect();
    assert_eq!(names, ["ferrotune_demo", "ferrotune_identity"]);
    for (name, file) in [
        ("ferrotune_demo", "ferrotune_demo.json"),
        ("ferrotune_identity", "ferrotune_identity.json"),
    ] {
        let attr = info.get(name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(attr.source, DatasetSource::File(file.into()));
    }
}

#[test]
fn every_listed_dataset_loads_with_every_row() {
    let info = DatasetInfo::from_dir(&data_dir()).expect("data/dataset_info.json");
    let expected_counts = [("ferrotune_demo", 300), ("ferrotune_identity", 40)];
    for (name, count) in expected_counts {
        let DatasetSource::File(file) = info.get(name).expect("listed").source else {
            panic!("{name} is not a local file");
        };
        let rows = raw_rows(&file);
        let records = load(name);
        assert_eq!(rows.len(), count, "{name}: raw rows");
        assert_eq!(records.len(), count, "{name}: converted records");
        for (row, record) in rows.iter().zip(&records) {
            let (instruction, input) = (field(row, "instruction"), field(row, "input"));
            // LLaMA-Factory's alpaca converter: instruction, then "\n" and the input when present.
            let prompt = if input.is_empty() {
                instruction.to_string()
            } else {
                format!("{instruction}\n{input}")
            };
            assert_eq!(record.prompt.len(), 1, "{name}: {instruction}");
            assert_eq!(record.prompt[0].role, Role::User);
            assert_eq!(record.prompt[0].content, prompt);
            assert_eq!(record.response.len(), 1, "{name}: {instruction}");
            assert_eq!(record.response[0].role, Role::Assistant);
            assert_eq!(record.response[0].content, field(row, "output"));
            assert_eq!(record.system, "");
        }
    }
}

#[test]
fn demo_answers_keep_the_house_style() {
    let records = load("ferrotune_demo");
    let with_input = records
        .iter()
        .filter(|r| r.prompt[0].content.contains('\n'))
        .count();
    assert!(with_input >= 30, "only {with_input} examples with an input");
    for r in &records {
        let answer = &r.response[0].content;
        assert!(answer.starts_with("Ferrotune says: "), "{answer}");
        let summary = answer.rsplit_once("\n\nIn short: ").map(|(_, s)| s);
        assert!(
            summary.is_some_and(|s| !s.is_empty() && !s.contains('\n')),
            "no one-line `In short:` summary at the end of: {answer}"
        );
    }
    for r in &load("ferrotune_identity") {
        assert!(r.response[0].content.contains("Ferro"), "{:?}", r.response);
    }
}

#[test]
fn main_job_config_loads_both_datasets_in_order() {
    let cfg = Config::from_yaml_file(repo().join("examples/smollm2_lora_sft.yaml"), &[])
        .expect("examples/smollm2_lora_sft.yaml");
    let records = load_dataset(&cfg, &cfg.data.dataset, &repo().join(&cfg.data.dataset_dir))
        .expect("main job datasets");
    assert_eq!(records.len(), 340);
    // mix_strategy concat: the demo rows, then the identity rows.
    let last_demo = raw_rows("ferrotune_demo.json")
        .last()
        .cloned()
        .expect("rows");
    let first_identity = raw_rows("ferrotune_identity.json")
        .first()
        .cloned()
        .expect("rows");
    assert_eq!(
        records[299].response[0].content,
        field(&last_demo, "output")
    );
    assert_eq!(
        records[300].response[0].content,
        field(&first_identity, "output")
    );
}
