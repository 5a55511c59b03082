//! Parquet dataset files and hub datasets from the Hugging Face cache.
//!
//! `fixtures/parquet/` (written by `tools/make_parquet_fixtures.py` with pyarrow) holds each
//! parquet file beside a JSON file of the same rows as pyarrow returns them
//! (`Table.to_pylist()`, which is what `datasets` hands LLaMA-Factory): every row read here must
//! equal its JSON counterpart, value for value and column for column.

use std::path::{Path, PathBuf};

use ferrotune_config::Config;
use ferrotune_data::dataset::{load_dataset, read_files, read_rows, DatasetError};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/parquet")
}

/// The rows of `fixtures/parquet/<stem>.json`.
fn expected(stem: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(fixtures().join(format!("{stem}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Reads a parquet fixture and compares it with its JSON rows and column order.
fn check_against_json(parquet: &str, stem: &str) {
    let table = read_rows(&fixtures().join(parquet)).unwrap_or_else(|e| panic!("{e}"));
    let want = expected(stem);
    assert_eq!(table.rows.len(), want.len(), "{parquet}: row count");
    let first_keys: Vec<String> = want[0].as_object().unwrap().keys().cloned().collect();
    assert_eq!(table.columns, first_keys, "{parquet}: column order");
    for (i, (got, want)) in table.rows.iter().zip(&want).enumerate() {
        assert_eq!(&Value::Object(got.clone()), want, "{parquet}: row {i}");
        let keys: Vec<&String> = got.keys().collect();
        assert_eq!(
            keys,
            first_keys.iter().collect::<Vec<_>>(),
            "{parquet}: row {i} key order"
        );
    }
}

#[test]
fn alpaca_snappy_with_two_row_groups() {
    check_against_json("alpaca.snappy.parquet", "alpaca");
}

#[test]
fn alpaca_gzip_without_dictionary() {
    check_against_json("alpaca.gzip.parquet", "alpaca");
}

#[test]
fn sharegpt_zstd_list_of_structs() {
    check_against_json("sharegpt.zstd.parquet", "sharegpt");
    let table = read_rows(&fixtures().join("sharegpt.zstd.parquet")).unwrap();
    // The conversation column is a list of {"from", "value"} objects, in that key order.
    let turn = &table.rows[0]["conversations"][0];
    assert_eq!(
        turn.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["from", "value"]
    );
    assert_eq!(turn["from"], "human");
}

#[test]
fn every_value_type() {
    check_against_json("types.parquet", "types");
    let table = read_rows(&fixtures().join("types.parquet")).unwrap();
    // Spot checks of what the JSON comparison covers: 64-bit ints past f64 precision, nulls
    // inside lists and structs, and an all-null column.
    assert_eq!(table.rows[2]["id"], Value::from(9007199254740993i64));
    assert_eq!(table.rows[2]["matrix"], serde_json::json!([[null, 4]]));
    assert_eq!(
        table.rows[1]["meta"],
        serde_json::json!({"lang": null, "turns": 0})
    );
    assert!(table.rows.iter().all(|r| r["nothing"].is_null()));
}

#[test]
fn folder_of_shards_reads_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("alpaca.snappy.parquet"),
        dir.path().join("a-0.parquet"),
    )
    .unwrap();
    std::fs::copy(
        fixtures().join("alpaca.gzip.parquet"),
        dir.path().join("a-1.parquet"),
    )
    .unwrap();
    let table = read_rows(dir.path()).unwrap();
    let want = expected("alpaca");
    assert_eq!(table.rows.len(), 6);
    for (i, row) in table.rows.iter().enumerate() {
        assert_eq!(Value::Object(row.clone()), want[i % 3], "row {i}");
    }
    // The same files as an explicit list (as hub shards are passed).
    let files = [
        dir.path().join("a-1.parquet"),
        dir.path().join("a-0.parquet"),
    ];
    let listed = read_files(dir.path(), &files).unwrap();
    assert_eq!(listed.rows.len(), 6);
    assert_eq!(listed.path, dir.path());
}

#[test]
fn corrupt_files_give_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = std::fs::read(fixtures().join("alpaca.snappy.parquet")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("text.parquet", b"instruction,output\nhi,there\n".to_vec()),
        ("truncated.parquet", good[..good.len() / 2].to_vec()),
        ("empty.parquet", Vec::new()),
        // Data pages overwritten, footer intact: the failure comes from decoding a row.
        ("pages.parquet", {
            let mut bytes = good.clone();
            for b in bytes.iter_mut().take(good.len() / 2).skip(4) {
                *b = 0xA5;
            }
            bytes
        }),
    ];
    for (name, bytes) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = read_rows(&path).unwrap_err();
        assert!(matches!(err, DatasetError::Parse { .. }), "{name}: {err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("{}: invalid parquet file (", path.display())),
            "{name}: {text}"
        );
    }
}

/// `dataset_info.json` with `entry` as dataset `demo`, in a temporary folder.
fn info_dir(entry: Value) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let info = serde_json::json!({ "demo": entry });
    std::fs::write(dir.path().join("dataset_info.json"), info.to_string()).unwrap();
    dir
}

fn load_demo(cfg: &Config, dir: &Path) -> Vec<ferrotune_data::dataset::ConversationRecord> {
    load_dataset(cfg, &["demo".to_string()], dir).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn parquet_and_json_files_convert_to_the_same_conversations() {
    let cfg = Config::default();
    let sharegpt = serde_json::json!({
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "tools": "tools"},
    });
    for (parquet, json, mut entry) in [
        (
            "alpaca.snappy.parquet",
            "alpaca.json",
            serde_json::json!({}),
        ),
        ("sharegpt.zstd.parquet", "sharegpt.json", sharegpt),
    ] {
        entry["file_name"] = Value::from(fixtures().join(parquet).to_str().unwrap());
        let from_parquet = load_demo(&cfg, info_dir(entry.clone()).path());
        entry["file_name"] = Value::from(fixtures().join(json).to_str().unwrap());
        let from_json = load_demo(&cfg, info_dir(entry).path());
        assert!(!from_parquet.is_empty());
        assert_eq!(from_parquet, from_json, "{parquet}");
    }
}

#[test]
fn hub_dataset_from_the_cache() {
    // A hub cache holding `org/demo` at `main`, with the sharegpt rows as a parquet shard.
    let cache = tempfile::tempdir().unwrap();
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let repo = cache.path().join("datasets--org--demo");
    let shard = repo
        .join("snapshots")
        .join(commit)
        .join("data/train-00000-of-00001.parquet");
    std::fs::create_dir_all(shard.parent().unwrap()).unwrap();
    std::fs::copy(fixtures().join("sharegpt.zstd.parquet"), &shard).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();

    let mut cfg = Config::default();
    cfg.model.cache_dir = Some(cache.path().to_str().unwrap().to_string());
    let mut entry = serde_json::json!({
        "hf_hub_url": "org/demo",
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "tools": "tools"},
    });
    let from_hub = load_demo(&cfg, info_dir(entry.clone()).path());
    entry.as_object_mut().unwrap().remove("hf_hub_url");
    entry["file_name"] = Value::from(fixtures().join("sharegpt.json").to_str().unwrap());
    let from_file = load_demo(&cfg, info_dir(entry).path());
    assert_eq!(from_hub.len(), 2);
    assert_eq!(from_hub, from_file);
}
