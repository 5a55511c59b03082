//! Dataset loading against LLaMA-Factory's own demo data (`/work/shared/data/llamafactory`, an
//! unchanged copy of its `data/` folder): every count and value below is checked against the raw
//! files, and the converter rules against LLaMA-Factory v0.9.5 `data/converter.py`.

use std::path::{Path, PathBuf};

use ferrotune_config::args::{MixStrategy, Stage};
use ferrotune_config::Config;
use ferrotune_data::dataset::{
    convert_row, load_dataset, load_splits, read_rows, ConversationRecord, Converted, DatasetError,
    DatasetInfo, DatasetSource, RowSource, SkipReason,
};
use ferrotune_data::message::{Message, Role};
use serde_json::{json, Value};

/// The shared demo data folder beside the repository.
fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/llamafactory")
}

/// A default config at `stage`.
fn config(stage: Stage) -> Config {
    let mut cfg = Config::default();
    cfg.finetuning.stage = stage;
    cfg
}

/// Loads `name` from the shared folder.
fn load(name: &str, stage: Stage) -> Vec<ConversationRecord> {
    let names = [name.to_string()];
    match load_dataset(&config(stage), &names, &data_dir()) {
        Ok(records) => records,
        Err(e) => panic!("loading {name}: {e}"),
    }
}

/// A raw demo file as JSON.
fn raw(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(data_dir().join(file)).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

fn msg(role: Role, content: &str) -> Message {
    Message::new(role, content)
}

#[test]
fn parses_every_entry_of_the_shared_dataset_info() {
    let info = DatasetInfo::from_dir(&data_dir()).expect("dataset_info.json");
    let names: Vec<String> = info.names().map(String::from).collect();
    assert_eq!(names.len(), 104);
    for name in &names {
        info.get(name).unwrap_or_else(|e| panic!("{e}"));
    }
    let alpaca = info.get("alpaca_en_demo").expect("entry");
    assert_eq!(
        alpaca.source,
        DatasetSource::File("alpaca_en_demo.json".into())
    );
    assert_eq!(alpaca.columns.prompt.as_deref(), Some("instruction"));
    assert_eq!(alpaca.columns.response.as_deref(), Some("output"));
    assert_eq!(alpaca.tags.role_tag.as_deref(), Some("from"));
    // A `columns` object unsets every column it does not name.
    let c4 = info.get("c4_demo").expect("entry");
    assert_eq!(c4.columns.prompt.as_deref(), Some("text"));
    assert_eq!(
        (c4.columns.query.clone(), c4.columns.response.clone()),
        (None, None)
    );
    // A `tags` object unsets every tag it does not name.
    let kto = info.get("kto_en_demo").expect("entry");
    assert_eq!(kto.tags.user_tag.as_deref(), Some("user"));
    assert_eq!(
        (
            kto.tags.observation_tag.clone(),
            kto.tags.system_tag.clone()
        ),
        (None, None)
    );
    assert!(info.get("dpo_en_demo").expect("entry").ranking);
    // Hub datasets come from the Hugging Face cache (here a fake one holding three alpaca rows
    // as a parquet shard, so no network is used); other hubs are not read yet.
    let hub = names.iter().find_map(|n| match info.get(n).ok()?.source {
        DatasetSource::HfHub(url) => Some((n.clone(), url)),
        _ => None,
    });
    let (hub_name, url) = hub.expect("a hub dataset");
    let cache = tempfile::tempdir().expect("tempdir");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = cache
        .path()
        .join(format!("datasets--{}", url.replace('/', "--")));
    let shard = repo.join("snapshots").join(commit).join("train.parquet");
    std::fs::create_dir_all(shard.parent().expect("parent")).expect("mkdir");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/parquet/alpaca.snappy.parquet");
    std::fs::copy(fixture, &shard).expect("copy");
    std::fs::create_dir_all(repo.join("refs")).expect("mkdir");
    std::fs::write(repo.join("refs/main"), commit).expect("ref");
    let mut cfg = config(Stage::Sft);
    cfg.model.cache_dir = Some(cache.path().to_string_lossy().into_owned());
    let records = load_dataset(&cfg, std::slice::from_ref(&hub_name), &data_dir())
        .unwrap_or_else(|e| panic!("{e}"));
    let alpaca = raw("alpaca_en_demo.json");
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[0].response[0].content,
        alpaca[0]["output"].as_str().unwrap_or_default()
    );

    let err = load_dataset(&cfg, &["deepctrl".to_string()], &data_dir());
    let text = err
        .map(|_| ())
        .expect_err("modelscope datasets are not read yet")
        .to_string();
    assert!(
        text.contains("(ms_hub_url: deepctrl/deepctrl-sft-data)")
            && text.contains("add `file_name`"),
        "{text}"
    );
}

#[test]
fn unknown_dataset_suggests_the_closest_name() {
    let err = load_dataset(&config(Stage::Sft), &["alpaca_en_dmeo".into()], &data_dir())
        .expect_err("unknown");
    assert!(
        matches!(&err, DatasetError::UnknownDataset { suggestion: Some(s), .. } if s == "alpaca_en_demo")
    );
    assert!(
        err.to_string().contains("did you mean `alpaca_en_demo`?"),
        "{err}"
    );
}

#[test]
fn alpaca_demo_matches_the_raw_file_row_for_row() {
    let records = load("alpaca_en_demo", Stage::Sft);
    let rows = raw("alpaca_en_demo.json");
    assert_eq!((records.len(), rows.len()), (999, 999));
    for (record, row) in records.iter().zip(&rows) {
        let parts: Vec<&str> = ["instruction", "input"]
            .iter()
            .filter_map(|k| row[k].as_str())
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(record.prompt, [msg(Role::User, &parts.join("\n"))]);
        assert_eq!(
            record.response,
            [msg(
                Role::Assistant,
                row["output"].as_str().unwrap_or_default()
            )]
        );
        assert_eq!(
            (
                record.system.as_str(),
                record.tools.as_str(),
                record.kto_tag
            ),
            ("", "", None)
        );
    }
    assert_eq!(
        records[0].prompt[0].content,
        "Describe a process of making crepes."
    );

    let identity = load("identity", Stage::Sft);
    assert_eq!(identity.len(), 91);
    assert_eq!(identity[0].prompt, [msg(Role::User, "hi")]);
    assert_eq!(
        identity[0].response[0].content,
        "Hello! I am {{name}}, an AI assistant developed by {{author}}. How can I assist you today?"
    );
}

#[test]
fn dpo_demo_gives_chosen_and_rejected_responses() {
    let records = load("dpo_en_demo", Stage::Dpo);
    let rows = raw("dpo_en_demo.json");
    assert_eq!(records.len(), 300);
    for (record, row) in records.iter().zip(&rows) {
        assert_eq!(record.response.len(), 2);
        assert_eq!(
            record.response[0].content,
            row["chosen"]["value"].as_str().unwrap_or_default()
        );
        assert_eq!(
            record.response[1].content,
            row["rejected"]["value"].as_str().unwrap_or_default()
        );
        assert_eq!(record.prompt.len() % 2, 1);
    }
    // Row 1 starts with a system turn, which becomes `system`.
    assert!(records[1]
        .system
        .starts_with("You are a teacher. Given a task"));
    assert_eq!(records[1].prompt.len(), 1);
}

#[test]
fn ranking_data_is_refused_outside_rm_and_dpo() {
    let err =
        load_dataset(&config(Stage::Sft), &["dpo_en_demo".into()], &data_dir()).expect_err("stage");
    let text = err.to_string();
    assert!(
        text.contains("dataset `dpo_en_demo` is a ranking dataset")
            && text.contains("`stage` is sft"),
        "{text}"
    );
    let err =
        load_dataset(&config(Stage::Rm), &["identity".into()], &data_dir()).expect_err("stage");
    assert!(
        err.to_string().contains("is not a ranking dataset"),
        "{err}"
    );
}

#[test]
fn kto_demo_carries_labels_and_the_padded_response() {
    let records = load("kto_en_demo", Stage::Kto);
    let rows = raw("kto_en_demo.json");
    assert_eq!(records.len(), 300);
    assert_eq!(
        records.iter().filter(|r| r.kto_tag == Some(false)).count(),
        150
    );
    for (record, row) in records.iter().zip(&rows) {
        let messages = row["messages"].as_array().cloned().unwrap_or_default();
        let last = messages
            .last()
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default();
        let label = row["label"].as_bool();
        assert_eq!(record.kto_tag, label);
        let expected = if label == Some(true) {
            [msg(Role::Assistant, last), msg(Role::Assistant, "")]
        } else {
            [msg(Role::Assistant, ""), msg(Role::Assistant, last)]
        };
        assert_eq!(record.response, expected);
        assert_eq!(record.prompt.len(), messages.len() - 1);
    }
}

#[test]
fn glaive_demo_keeps_tools_and_function_turns() {
    let records = load("glaive_toolcall_en_demo", Stage::Sft);
    let rows = raw("glaive_toolcall_en_demo.json");
    assert_eq!(records.len(), 300);
    assert_eq!(
        records[0].tools,
        rows[0]["tools"].as_str().unwrap_or_default()
    );
    let roles: Vec<Role> = records[0].prompt.iter().map(|m| m.role).collect();
    assert_eq!(
        roles[..5],
        [
            Role::User,
            Role::Assistant,
            Role::User,
            Role::Function,
            Role::Observation
        ]
    );
    assert_eq!(
        records[0].prompt[3].content,
        r#"{"name": "search_recipes", "arguments": {"ingredients": ["chicken", "bell peppers", "rice"]}}"#
    );
}

#[test]
fn pretraining_demos_map_text_to_one_user_turn() {
    let c4 = load("c4_demo", Stage::Pt);
    assert_eq!(c4.len(), 300);
    assert!(c4[0].prompt[0]
        .content
        .starts_with("Don’t think you need all the bells and whistles?"));
    assert!(c4
        .iter()
        .all(|r| r.prompt.len() == 1 && r.response.is_empty()));
    let wiki = load("wiki_demo", Stage::Pt);
    let lines: Vec<String> = std::fs::read_to_string(data_dir().join("wiki_demo.txt"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect();
    assert_eq!((wiki.len(), lines.len()), (30, 30));
    for (record, line) in wiki.iter().zip(&lines) {
        assert_eq!(record.prompt, [msg(Role::User, line)]);
    }
}

/// Converts one inline `row` under the `dataset_info.json` entry `entry`.
fn convert(entry: Value, row: Value) -> Result<Converted, DatasetError> {
    let info = DatasetInfo::parse(
        &json!({ "t": entry }).to_string(),
        Path::new("dataset_info.json"),
    )?;
    let attr = info.get("t")?;
    let Value::Object(row) = row else {
        panic!("row must be an object")
    };
    let columns: Vec<String> = row.keys().cloned().collect();
    let src = RowSource {
        attr: &attr,
        path: Path::new("inline.json"),
        columns: &columns,
    };
    convert_row(&src, &row, 7)
}

/// The record of a converted row.
fn record(converted: Result<Converted, DatasetError>) -> ConversationRecord {
    match converted {
        Ok(Converted::Record(r)) => r,
        other => panic!("expected a record, got {other:?}"),
    }
}

#[test]
fn alpaca_converter_history_ranking_and_kto() {
    let entry = json!({"file_name": "x.json", "columns": {"prompt": "instruction", "query": "input",
        "response": "output", "history": "history", "system": "system"}});
    let r = record(convert(
        entry,
        json!({"instruction": "Add", "input": "1+1", "output": "2",
        "history": [["hi", "hello"]], "system": "Be exact."}),
    ));
    assert_eq!(
        r.prompt,
        [
            msg(Role::User, "hi"),
            msg(Role::Assistant, "hello"),
            msg(Role::User, "Add\n1+1")
        ]
    );
    assert_eq!(
        (r.response, r.system),
        (vec![msg(Role::Assistant, "2")], "Be exact.".to_string())
    );

    let entry = json!({"file_name": "x.json", "ranking": true, "columns": {"prompt": "q", "chosen": "c", "rejected": "r"}});
    let r = record(convert(
        entry,
        json!({"q": "pick", "c": "good", "r": "bad"}),
    ));
    assert_eq!(
        r.response,
        [msg(Role::Assistant, "good"), msg(Role::Assistant, "bad")]
    );

    let entry = json!({"file_name": "x.json", "columns": {"prompt": "q", "response": "a", "kto_tag": "label"}});
    let r = record(convert(
        entry,
        json!({"q": "hm", "a": "meh", "label": false}),
    ));
    assert_eq!(
        (r.response, r.kto_tag),
        (
            vec![msg(Role::Assistant, ""), msg(Role::Assistant, "meh")],
            Some(false)
        )
    );
}

#[test]
fn sharegpt_converter_skips_broken_alternation_and_counts() {
    let entry = json!({"file_name": "x.json", "formatting": "sharegpt"});
    let turn = |from: &str, value: &str| json!({"from": from, "value": value});
    let ok = record(convert(
        entry.clone(),
        json!({"conversations": [turn("system", "S"), turn("human", "a"), turn("gpt", "b")]}),
    ));
    assert_eq!(
        (
            ok.system.as_str(),
            ok.prompt.len(),
            ok.response[0].content.as_str()
        ),
        ("S", 1, "b")
    );
    let broken = convert(
        entry.clone(),
        json!({"conversations": [turn("human", "a"), turn("human", "b")]}),
    );
    assert_eq!(
        broken.ok(),
        Some(Converted::Skipped(SkipReason::InvalidRole {
            turn: 1,
            role: "human".into()
        }))
    );
    let odd = convert(
        entry.clone(),
        json!({"conversations": [turn("human", "a"), turn("gpt", "b"), turn("human", "c")]}),
    );
    assert_eq!(
        odd.ok(),
        Some(Converted::Skipped(SkipReason::InvalidCount {
            count: 3,
            ranking: false
        }))
    );
    let missing = convert(
        entry,
        json!({"conversations": [{"role": "user", "value": "a"}]}),
    )
    .expect_err("no `from`");
    assert!(
        missing
            .to_string()
            .contains("dataset `t` row 7: message 0 has no key `from` (tags.role_tag)"),
        "{missing}"
    );
}

#[test]
fn openai_converter_tool_calls_merged_tool_results_and_system_rule() {
    let entry = json!({"file_name": "x.json", "formatting": "openai", "columns": {"messages": "messages", "tools": "tools"},
        "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
                 "observation_tag": "tool", "system_tag": "system"}});
    let row = json!({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": null, "tool_calls": [{"type": "function", "function": {"name": "w", "arguments": "{}"}}]},
        {"role": "tool", "content": "sun"}, {"role": "tool", "content": "rain"},
        {"role": "assistant", "content": "mixed"}],
        "tools": [{"name": "w"}]});
    let r = record(convert(entry.clone(), row));
    assert_eq!(
        r.prompt[1],
        msg(Role::Function, r#"[{"name": "w", "arguments": "{}"}]"#)
    );
    assert_eq!(
        r.prompt[2],
        msg(
            Role::Observation,
            "sun\n</tool_response>\n<tool_response>\nrain"
        )
    );
    assert_eq!(
        (r.tools.as_str(), r.system.as_str()),
        (r#"[{"name": "w"}]"#, "")
    );
    // LLaMA-Factory 0.9.5: no tools and no system gives "detailed thinking off".
    let plain = record(convert(
        entry,
        json!({"messages": [{"role": "system", "content": "Hi."},
        {"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}),
    ));
    assert_eq!(plain.system, "Hi.\ndetailed thinking off");
}

/// Writes `files` and a `dataset_info.json` with `info` into a new folder.
fn temp_dataset(info: Value, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("dataset_info.json"), info.to_string()).expect("write");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write");
    }
    dir
}

/// The error of loading dataset `d` from a temp folder.
fn load_error(info: Value, files: &[(&str, &str)]) -> String {
    let dir = temp_dataset(info, files);
    match load_dataset(&config(Stage::Sft), &["d".into()], dir.path()) {
        Ok(r) => panic!("expected an error, loaded {} records", r.len()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_give_errors_naming_file_line_column_and_key() {
    let info = json!({"d": {"file_name": "d.json"}});
    let e = load_error(
        info.clone(),
        &[(
            "d.json",
            "[\n  {\"instruction\": \"a\",\n   \"output\" \"b\"}\n]",
        )],
    );
    assert!(e.contains("d.json:3:13: invalid JSON: expected `:`"), "{e}");
    let e = load_error(
        json!({"d": {"file_name": "d.jsonl"}}),
        &[("d.jsonl", "{\"instruction\": \"a\"}\n{oops}\n")],
    );
    assert!(e.contains("d.jsonl:2:2: invalid JSON"), "{e}");
    let e = load_error(
        info.clone(),
        &[("d.json", r#"[{"instruction": "a", "input": ""}]"#)],
    );
    assert!(
        e.contains("dataset `d`: column `output` (`columns.response`) not found")
            && e.contains("[\"instruction\", \"input\"]"),
        "{e}"
    );
    let e = load_error(
        info.clone(),
        &[(
            "d.json",
            r#"[{"instruction": 5, "input": "", "output": "b"}]"#,
        )],
    );
    assert_eq!(
        e,
        "dataset `d` row 0: column `instruction` must be a string, found a number: 5"
    );
    let e = load_error(info.clone(), &[("d.json", "[]")]);
    assert!(
        e.ends_with("d.json: the dataset file holds no examples"),
        "{e}"
    );
    let e = load_error(info, &[]);
    assert!(
        e.starts_with("dataset `d`: file ") && e.contains("d.json not found"),
        "{e}"
    );
    let e = load_error(
        json!({"d": {"file_name": "d.json", "formatting": "sharegpt"}}),
        &[(
            "d.json",
            r#"[{"conversations": [{"from": "gpt", "value": "x"}]}]"#,
        )],
    );
    assert!(
        e.contains("all 1 examples were skipped (row 0: turn 0 has role \"gpt\""),
        "{e}"
    );
}

#[test]
fn csv_txt_and_folders_read_like_datasets_builders() {
    let dir = temp_dataset(
        json!({}),
        &[
            (
                "a.csv",
                "instruction,output,n,ok\n\"x, y\",1,2,True\nz,,3,False\n",
            ),
            ("t.txt", "one\r\ntwo\n\nthree\n"),
        ],
    );
    let table = read_rows(&dir.path().join("a.csv")).expect("csv");
    assert_eq!(
        table.rows[0],
        *json!({"instruction": "x, y", "output": 1, "n": 2, "ok": true})
            .as_object()
            .expect("obj")
    );
    assert_eq!(table.rows[1]["output"], Value::Null);
    let text = read_rows(&dir.path().join("t.txt")).expect("txt");
    let lines: Vec<&str> = text
        .rows
        .iter()
        .filter_map(|r| r["text"].as_str())
        .collect();
    assert_eq!(lines, ["one", "two", "", "three"]);
    std::fs::create_dir(dir.path().join("parts")).expect("mkdir");
    std::fs::write(dir.path().join("parts/1.jsonl"), "{\"a\": 1}\n").expect("write");
    std::fs::write(dir.path().join("parts/2.json"), "[{\"b\": 2}]").expect("write");
    let folder = read_rows(&dir.path().join("parts")).expect("folder");
    assert_eq!(
        (folder.columns.clone(), folder.rows[0]["b"].clone()),
        (vec!["a".to_string(), "b".to_string()], Value::Null)
    );
}

#[test]
fn mixing_sampling_and_val_size() {
    let names = ["identity".to_string(), "alpaca_en_demo".to_string()];
    let mut cfg = config(Stage::Sft);
    cfg.data.max_samples = Some(5);
    let concat = load_dataset(&cfg, &names, &data_dir()).expect("concat");
    let identity = load("identity", Stage::Sft);
    let alpaca = load("alpaca_en_demo", Stage::Sft);
    assert_eq!(concat.len(), 10);
    assert_eq!((&concat[..5], &concat[5..]), (&identity[..5], &alpaca[..5]));
    cfg.data.mix_strategy = MixStrategy::InterleaveUnder;
    let mixed = load_dataset(&cfg, &names, &data_dir()).expect("interleave");
    assert_eq!(
        (&mixed[0], &mixed[1], &mixed[2]),
        (&identity[0], &alpaca[0], &identity[1])
    );
    cfg.data.interleave_probs = vec![0.5, 0.6];
    let e = load_dataset(&cfg, &names, &data_dir()).expect_err("probs");
    assert!(e.to_string().contains("sums to 1.1"), "{e}");

    cfg.data.dataset = vec!["identity".into()];
    cfg.data.max_samples = None;
    cfg.data.val_size = 0.1;
    let splits = load_splits(&cfg, &data_dir()).expect("split");
    assert_eq!((splits.train.len(), splits.eval.len()), (81, 10)); // ceil(9.1) = 10 for eval
    let mut all: Vec<String> = splits
        .train
        .iter()
        .chain(&splits.eval)
        .map(|r| r.prompt[0].content.clone())
        .collect();
    let mut expected: Vec<String> = identity
        .iter()
        .map(|r| r.prompt[0].content.clone())
        .collect();
    all.sort();
    expected.sort();
    assert_eq!(all, expected);

    let dir = temp_dataset(
        json!({"d": {"file_name": "d.json", "num_samples": 5}}),
        &[(
            "d.json",
            r#"[{"instruction": "a", "input": "", "output": "1"}, {"instruction": "b", "input": "", "output": "2"}]"#,
        )],
    );
    let sampled = load_dataset(&config(Stage::Sft), &["d".into()], dir.path()).expect("sampled");
    assert_eq!(sampled.len(), 5);
    for want in ["a", "b"] {
        assert!(
            sampled.iter().any(|r| r.prompt[0].content == want),
            "every row is kept once at least"
        );
    }
}

#[test]
fn streaming_shuffles_through_a_buffer_and_takes_val_size_from_the_head() {
    let identity = load("identity", Stage::Sft);
    let prompts = |r: &[ConversationRecord]| -> Vec<String> {
        r.iter().map(|r| r.prompt[0].content.clone()).collect()
    };
    let mut cfg = config(Stage::Sft);
    cfg.data.dataset = vec!["identity".into()];
    cfg.data.streaming = true;
    cfg.data.buffer_size = 16;
    cfg.data.val_size = 10.0;
    cfg.training.max_steps = 10;
    let a = load_splits(&cfg, &data_dir()).expect("streaming");
    let b = load_splits(&cfg, &data_dir()).expect("streaming again");
    assert_eq!((a.train.len(), a.eval.len()), (81, 10));
    assert_eq!(a, b, "same seed, same order");
    // A buffer of 16 moves an example at most 16 places ahead of its file position.
    let all: Vec<String> = prompts(&a.eval)
        .into_iter()
        .chain(prompts(&a.train))
        .collect();
    let file = prompts(&identity);
    assert_ne!(all, file);
    for (pos, p) in all.iter().enumerate() {
        let src = file
            .iter()
            .position(|f| f == p)
            .expect("every example once");
        assert!(src <= pos + 16, "example {src} came out at {pos}");
    }
    let mut sorted = all.clone();
    sorted.sort();
    let mut want = file.clone();
    want.sort();
    assert_eq!(sorted, want);
    // buffer_size 1 keeps the file order: eval is the head of the file.
    cfg.data.buffer_size = 1;
    let c = load_splits(&cfg, &data_dir()).expect("unshuffled");
    assert_eq!(prompts(&c.eval), file[..10].to_vec());
}
