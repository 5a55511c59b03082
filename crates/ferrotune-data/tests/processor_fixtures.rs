//! The batch processors (packed pretraining, packed sft, pairwise, KTO) compared row for row,
//! id for id and label for label with LLaMA-Factory 0.9.5's tokenized datasets
//! (`fixtures/data/*.jsonl`, see `fixtures/data/README.md`), from the fixture YAML through
//! the `dataset` module, the template and the processor.

mod common;

use common::{assert_column, Case};
use ferrotune_data::processor::{
    encode_feedback, encode_pairwise, encode_pretrain, encode_pretrain_packed,
    encode_supervised_packed, BatchOptions, EncodeOptions, KtoEncoded, PackOptions, Packed,
    IGNORE_INDEX,
};

/// The pretraining texts of a case (one user turn of raw text per record).
fn texts(case: &Case) -> Vec<&str> {
    case.records
        .iter()
        .map(|r| r.prompt[0].content.as_str())
        .collect()
}

/// Checks pt rows: ids, collator labels, all-ones attention mask.
fn check_pt_rows(case: &Case, rows: &[ferrotune_data::processor::Encoded]) {
    assert_eq!(rows.len(), case.golden.len(), "{}: row count", case.name);
    for (i, row) in rows.iter().enumerate() {
        let ids: Vec<u32> = case.column(i, "input_ids");
        let labels: Vec<i64> = case.column(i, "labels");
        let mask: Vec<u32> = case.column(i, "attention_mask");
        assert_column(&case.name, i, "input_ids", &row.input_ids, &ids);
        assert_column(&case.name, i, "labels", &row.labels, &labels);
        assert!(mask.iter().all(|&m| m == 1) && mask.len() == ids.len());
    }
}

#[test]
fn pretraining_packed_and_unpacked_matches_llamafactory() {
    for (name, want_rows, block) in [
        ("pt_c4_smollm2_packing", 229, 127),
        ("pt_c4_smollm2_packing_unset", 228, 128),
    ] {
        let case = Case::load(name);
        assert!(case.cfg.data.packing, "{name}: pt packs by default");
        let opts = BatchOptions {
            cutoff_len: case.effective_cutoff_len(),
            preprocessing_batch_size: case.cfg.data.preprocessing_batch_size,
        };
        assert_eq!(opts.cutoff_len, block, "{name}: block length");
        let template = case.cfg.data.template.as_deref();
        let rows =
            encode_pretrain_packed(template, &case.tok, &texts(&case), &opts).expect("pt packed");
        assert_eq!(rows.len(), want_rows, "{name}: blocks");
        check_pt_rows(&case, &rows);
        let masked_eos = rows
            .iter()
            .flat_map(|r| &r.labels)
            .filter(|&&l| l == IGNORE_INDEX)
            .count();
        assert_eq!(masked_eos, 49, "{name}: eos labels masked (pad = eos)");
    }

    let case = Case::load("pt_c4_smollm2");
    assert!(!case.cfg.data.packing);
    let rows: Vec<_> = texts(&case)
        .into_iter()
        .map(|t| {
            encode_pretrain(
                case.cfg.data.template.as_deref(),
                &case.tok,
                t,
                case.effective_cutoff_len(),
            )
            .expect("pt")
        })
        .collect();
    check_pt_rows(&case, &rows);
}

/// Packed pretraining keeps LLaMA-Factory's batches: the remainder is dropped per batch.
#[test]
fn pretraining_packs_within_preprocessing_batches() {
    let case = Case::load("pt_c4_smollm2_packing");
    let texts = texts(&case);
    let template = case.cfg.data.template.as_deref();
    let pack = |texts: &[&str], batch| {
        let opts = BatchOptions {
            cutoff_len: 127,
            preprocessing_batch_size: batch,
        };
        encode_pretrain_packed(template, &case.tok, texts, &opts).expect("pt packed")
    };
    let mut want = pack(&texts[..20], 1000);
    want.extend(pack(&texts[20..40], 1000));
    want.extend(pack(&texts[40..], 1000));
    let ours = pack(&texts, 20);
    assert_eq!(ours, want);
    assert!(ours.len() < 229, "each batch drops its own remainder");
}

#[test]
fn packed_supervised_matches_llamafactory() {
    for (name, neat) in [
        ("sft_alpaca_smollm2_packing", false),
        ("sft_alpaca_smollm2_neat_packing", true),
    ] {
        let case = Case::load(name);
        assert!(case.cfg.data.packing);
        assert_eq!(case.cfg.data.neat_packing, neat);
        let opts = EncodeOptions {
            cutoff_len: case.effective_cutoff_len(),
            train_on_prompt: case.cfg.data.train_on_prompt,
            mask_history: case.cfg.data.mask_history,
        };
        assert_eq!(opts.cutoff_len, 511);
        let pack = PackOptions {
            preprocessing_batch_size: case.cfg.data.preprocessing_batch_size,
            neat_packing: neat,
        };
        let rows =
            encode_supervised_packed(&case.template, &case.tok, &case.samples(), &opts, &pack)
                .expect("packed sft");
        assert_eq!(rows.len(), case.golden.len(), "{name}: pack count");
        assert_eq!(rows.len(), 18);
        for (i, row) in rows.iter().enumerate() {
            let ids: Vec<u32> = case.column(i, "input_ids");
            let labels: Vec<i64> = case.column(i, "labels");
            let mask: Vec<u32> = case.column(i, "attention_mask");
            let positions: Vec<u32> = case.column(i, "position_ids");
            assert_column(name, i, "input_ids", &row.input_ids, &ids);
            assert_column(name, i, "labels", &row.labels, &labels);
            assert_column(name, i, "attention_mask", &row.attention_mask, &mask);
            assert_column(name, i, "position_ids", &row.position_ids, &positions);
            assert_eq!(row.input_ids.len(), 512);
            let as_row: Packed = serde_json::from_value(case.golden[i].clone()).expect("row");
            assert_eq!(&as_row, row, "{name} row {i} through serde");
            if neat {
                let bounds: Vec<usize> = case.column(i, "sequence_boundaries");
                assert_eq!(
                    row.sequence_boundaries.as_ref(),
                    Some(&bounds),
                    "{name} row {i}"
                );
            } else {
                assert_eq!(row.sequence_boundaries, None);
            }
        }
    }
}

#[test]
fn pairwise_matches_llamafactory() {
    let case = Case::load("pairwise_dpo_smollm2");
    let mut rows = Vec::new();
    for sample in case.samples() {
        let cutoff_len = case.effective_cutoff_len();
        if let Some(row) =
            encode_pairwise(&case.template, &case.tok, &sample, cutoff_len).expect("pairwise")
        {
            rows.push(row);
        }
    }
    assert_eq!(rows.len(), case.golden.len(), "row count");
    assert_eq!(rows.len(), 20);
    for (i, row) in rows.iter().enumerate() {
        let name = &case.name;
        let col_u = |k| case.column::<Vec<u32>>(i, k);
        let col_i = |k| case.column::<Vec<i64>>(i, k);
        assert_column(
            name,
            i,
            "chosen_input_ids",
            &row.chosen_input_ids,
            &col_u("chosen_input_ids"),
        );
        assert_column(
            name,
            i,
            "chosen_labels",
            &row.chosen_labels,
            &col_i("chosen_labels"),
        );
        assert_column(
            name,
            i,
            "rejected_input_ids",
            &row.rejected_input_ids,
            &col_u("rejected_input_ids"),
        );
        assert_column(
            name,
            i,
            "rejected_labels",
            &row.rejected_labels,
            &col_i("rejected_labels"),
        );
    }
}

#[test]
fn kto_matches_llamafactory() {
    let case = Case::load("kto_smollm2");
    let opts = BatchOptions {
        cutoff_len: case.effective_cutoff_len(),
        preprocessing_batch_size: case.cfg.data.preprocessing_batch_size,
    };
    let rows = encode_feedback(&case.template, &case.tok, &case.samples(), &opts).expect("kto");
    assert_eq!(rows.len(), case.golden.len(), "row count");
    assert_eq!(rows.len(), 20);
    for (i, row) in rows.iter().enumerate() {
        let name = &case.name;
        let col_u = |k| case.column::<Vec<u32>>(i, k);
        let col_i = |k| case.column::<Vec<i64>>(i, k);
        assert_column(name, i, "input_ids", &row.input_ids, &col_u("input_ids"));
        assert_column(name, i, "labels", &row.labels, &col_i("labels"));
        assert_column(
            name,
            i,
            "kl_input_ids",
            &row.kl_input_ids,
            &col_u("kl_input_ids"),
        );
        assert_column(name, i, "kl_labels", &row.kl_labels, &col_i("kl_labels"));
        assert_eq!(
            row.kto_tags,
            case.column::<bool>(i, "kto_tags"),
            "{name} row {i} kto_tags"
        );
        let as_row: KtoEncoded = serde_json::from_value(case.golden[i].clone()).expect("row");
        assert_eq!(&as_row, row, "{name} row {i} through serde");
    }
}

/// With a smaller preprocessing batch the KL answers rotate within each batch: example 5 of a
/// batch of 5 starting at 5 borrows from example 9, not from example 4.
#[test]
fn kto_kl_pairs_rotate_within_preprocessing_batches() {
    let case = Case::load("kto_smollm2");
    let samples = case.samples();
    let kto = |batch| {
        let opts = BatchOptions {
            cutoff_len: case.effective_cutoff_len(),
            preprocessing_batch_size: batch,
        };
        encode_feedback(&case.template, &case.tok, &samples, &opts).expect("kto")
    };
    let whole = kto(1000);
    let by_five = kto(5);
    let alone = |i: usize| {
        let opts = BatchOptions {
            cutoff_len: case.effective_cutoff_len(),
            preprocessing_batch_size: 1000,
        };
        let pair = [samples[i], samples[9]];
        encode_feedback(&case.template, &case.tok, &pair, &opts).expect("kto")
    };
    assert_eq!(by_five[5].input_ids, whole[5].input_ids);
    assert_eq!(by_five[6], whole[6], "inside a batch nothing changes");
    assert_ne!(by_five[5].kl_input_ids, whole[5].kl_input_ids);
    assert_eq!(by_five[5].kl_input_ids, alone(5)[0].kl_input_ids);
}

/// A KL pair that would borrow a missing answer is an error naming both examples (LLaMA-Factory
/// raises an `IndexError` there); the borrowing example itself stays valid.
#[test]
fn kto_missing_kl_answer_is_an_error() {
    use ferrotune_data::message::{Message, Role};
    let case = Case::load("kto_smollm2");
    let mut samples = case.samples();
    let broken = [Message::new(Role::Assistant, "")];
    samples[3].response = &broken;
    let opts = BatchOptions {
        cutoff_len: 1024,
        preprocessing_batch_size: 1000,
    };
    let err = encode_feedback(&case.template, &case.tok, &samples, &opts)
        .expect_err("missing kl answer")
        .to_string();
    assert!(
        err.contains("kto example 4 borrows the answer of example 3"),
        "{err}"
    );
}
