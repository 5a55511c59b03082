//! Malformed and hostile GGUF files, built in memory by `common::GgufWriter`/`common::Bytes`:
//! each must give an error naming the file, never a panic or a huge allocation.

mod common;

use common::{GgufWriter, RawTensor};
use ferrotune_hub::gguf::{GgufFile, GgufValue};

/// Writes `bytes` to a temp file and opens it; the error text must name the file.
fn open_err(bytes: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.gguf");
    std::fs::write(&path, bytes).unwrap();
    match GgufFile::open(&path) {
        Ok(_) => panic!("opening the hostile file succeeded"),
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(&path.display().to_string()),
                "no path in: {msg}"
            );
            msg
        }
    }
}

#[test]
fn wrong_magic_is_rejected() {
    let mut bytes = common::tiny_valid().to_bytes();
    bytes[..4].copy_from_slice(b"GGML");
    let msg = open_err(&bytes);
    assert!(msg.contains("bad magic"), "{msg}");
}

#[test]
fn every_truncation_is_an_error() {
    let bytes = common::tiny_valid().to_bytes();
    let mut cuts: Vec<usize> = (0..bytes.len()).step_by(7).collect();
    cuts.push(bytes.len() - 1);
    for cut in cuts {
        let msg = open_err(&bytes[..cut]);
        assert!(
            [
                "truncated",
                "shorter than",
                "past the end",
                "does not fit",
                "claims"
            ]
            .iter()
            .any(|m| msg.contains(m)),
            "cut at {cut}: {msg}"
        );
    }
}

#[test]
fn tensor_past_the_end_is_rejected() {
    let mut bytes = common::tiny_valid().to_bytes();
    bytes.truncate(bytes.len() - 4);
    let msg = open_err(&bytes);
    assert!(
        msg.contains("tensor `w`") && msg.contains("runs past the end"),
        "{msg}"
    );

    // Intact file, but the tensor's offset points far beyond it.
    let mut w = common::tiny_valid();
    w.tensors.clear();
    let mut b = common::Bytes::default();
    b.raw(b"GGUF").u32(3).u64(1).u64(0);
    b.str("far").u32(1).u64(32).u32(0).u64(1 << 40);
    let msg = open_err(&b.0);
    assert!(
        msg.contains("tensor `far`") && msg.contains("runs past the end"),
        "{msg}"
    );
}

#[test]
fn hostile_lengths_and_counts_are_errors_not_allocations() {
    // Huge metadata count.
    let mut b = common::Bytes::default();
    b.raw(b"GGUF").u32(3).u64(0).u64(u64::MAX);
    let msg = open_err(&b.0);
    assert!(
        msg.contains("metadata count") && msg.contains("does not fit"),
        "{msg}"
    );

    // Huge tensor count.
    let mut b = common::Bytes::default();
    b.raw(b"GGUF").u32(3).u64(1 << 60).u64(0).raw(&[0; 64]);
    let msg = open_err(&b.0);
    assert!(
        msg.contains("tensor count") && msg.contains("does not fit"),
        "{msg}"
    );

    // Huge key length.
    let mut b = common::Bytes::default();
    b.raw(b"GGUF")
        .u32(3)
        .u64(0)
        .u64(1)
        .u64(u64::MAX - 3)
        .raw(&[0; 32]);
    let msg = open_err(&b.0);
    assert!(
        msg.contains("metadata key") && msg.contains("claims"),
        "{msg}"
    );

    // Huge string value length.
    let mut b = common::Bytes::default();
    b.raw(b"GGUF")
        .u32(3)
        .u64(0)
        .u64(1)
        .str("general.name")
        .u32(8)
        .u64(1 << 50);
    let msg = open_err(&b.0);
    assert!(
        msg.contains("`general.name`") && msg.contains("claims"),
        "{msg}"
    );

    // Huge array count (of u32).
    let mut b = common::Bytes::default();
    b.raw(b"GGUF")
        .u32(3)
        .u64(0)
        .u64(1)
        .str("a")
        .u32(9)
        .u32(4)
        .u64(u64::MAX / 2);
    let msg = open_err(&b.0);
    assert!(
        msg.contains("array `a`") && msg.contains("does not fit"),
        "{msg}"
    );

    // Arrays nested deeper than any real file.
    let mut b = common::Bytes::default();
    b.raw(b"GGUF").u32(3).u64(0).u64(1).str("deep").u32(9);
    for _ in 0..100 {
        b.u32(9).u64(1);
    }
    let msg = open_err(&b.0);
    assert!(msg.contains("nests arrays deeper"), "{msg}");

    // Dimensions whose product overflows.
    let mut b = common::Bytes::default();
    b.raw(b"GGUF").u32(3).u64(1).u64(0);
    b.str("big").u32(2).u64(1 << 40).u64(1 << 40).u32(0).u64(0);
    let msg = open_err(&b.0);
    assert!(
        msg.contains("tensor `big`") && msg.contains("overflows"),
        "{msg}"
    );
}

#[test]
fn unsupported_version_is_rejected() {
    let mut w = common::tiny_valid();
    w.version = 1;
    let msg = open_err(&w.to_bytes());
    assert!(
        msg.contains("unsupported gguf version 1") && msg.contains("supported: 2, 3"),
        "{msg}"
    );
    w.version = 3u32.swap_bytes();
    let msg = open_err(&w.to_bytes());
    assert!(msg.contains("big-endian"), "{msg}");
    // Version 2 is read like version 3.
    w.version = 2;
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        GgufFile::open(&w.write(dir.path(), "v2.gguf"))
            .unwrap()
            .version(),
        2
    );
}

#[test]
fn unknown_tensor_type_id_is_rejected() {
    let w = GgufWriter::default().tensor(RawTensor {
        name: "odd".into(),
        ne: vec![32],
        type_id: 99,
        data: vec![0; 128],
    });
    let msg = open_err(&w.to_bytes());
    assert!(
        msg.contains("tensor `odd`") && msg.contains("unknown ggml tensor type id 99"),
        "{msg}"
    );
}

#[test]
fn other_structural_checks() {
    // Row length not a multiple of the block size.
    let w = GgufWriter::default().tensor(RawTensor {
        name: "q".into(),
        ne: vec![48, 2],
        type_id: 8,
        data: vec![0; 2 * 34 * 2],
    });
    let msg = open_err(&w.to_bytes());
    assert!(
        msg.contains("tensor `q`") && msg.contains("block size 32"),
        "{msg}"
    );

    // Duplicate tensor names and duplicate keys.
    let w = common::tiny_valid().f32_matrix("w", 1, 1, &[1.0]);
    assert!(open_err(&w.to_bytes()).contains("duplicate tensor name `w`"));
    let w = common::tiny_valid().kv("llama.block_count", GgufValue::U32(3));
    assert!(open_err(&w.to_bytes()).contains("duplicate metadata key `llama.block_count`"));

    // Alignment that is not a power of two.
    let w = common::tiny_valid().kv("general.alignment", GgufValue::U32(24));
    assert!(open_err(&w.to_bytes()).contains("`general.alignment` must be a u32 power of two"));
}
