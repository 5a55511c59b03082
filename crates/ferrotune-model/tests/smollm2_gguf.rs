//! The demo model, SmolLM2-135M-Instruct in Q4_1 GGUF, against transformers running
//! its f32 conversion: mean next-token NLL within 1e-3 relative and the same top-10 ids.

mod common;

use candle_core::{Device, Tensor, D};
use common::{demo_gguf, fixture};
use ferrotune_hub::gguf::GgufFile;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    text: String,
    input_ids: Vec<u32>,
    mean_nll: f64,
    last_top10_ids: Vec<u32>,
    last_top10_logits: Vec<f32>,
}

#[derive(Deserialize)]
struct Golden {
    cases: Vec<Case>,
    chat: Case,
}

/// Mean NLL of ids[1..] given the prefix, and the logits at the last position.
fn score(model: &ferrotune_model::CausalLM, ids: &[u32]) -> (f64, Vec<f32>) {
    let input = Tensor::new(ids, &Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let logits = model.forward(&input, None).unwrap().squeeze(0).unwrap(); // [T, V]
    let n = ids.len();
    let logp = candle_nn::ops::log_softmax(&logits, D::Minus1).unwrap();
    let logp: Vec<Vec<f32>> = logp.to_vec2().unwrap();
    let nll: f64 = (1..n)
        .map(|i| -f64::from(logp[i - 1][ids[i] as usize]))
        .sum::<f64>()
        / (n - 1) as f64;
    let last = logits.get(n - 1).unwrap().to_vec1().unwrap();
    (nll, last)
}

fn top10(logits: &[f32]) -> Vec<u32> {
    let mut idx: Vec<u32> = (0..logits.len() as u32).collect();
    idx.sort_by(|&a, &b| logits[b as usize].total_cmp(&logits[a as usize]));
    idx.truncate(10);
    idx
}

#[test]
fn smollm2_q4_1_matches_transformers() {
    let golden: Golden =
        serde_json::from_str(&std::fs::read_to_string(fixture("smollm2/golden.json")).unwrap())
            .unwrap();
    let gguf = GgufFile::open(&demo_gguf()).unwrap();
    let model = ferrotune_model::load_gguf(&gguf, &Device::Cpu).unwrap();
    assert_eq!(model.config.num_hidden_layers, 30);
    assert_eq!(model.config.num_key_value_heads, 3);
    assert!(model.config.tie_word_embeddings);
    assert_eq!(model.num_parameters(), 134_515_008);
    for case in golden.cases.iter().chain([&golden.chat]) {
        let (nll, last) = score(&model, &case.input_ids);
        let rel = (nll - case.mean_nll).abs() / case.mean_nll;
        println!(
            "nll {nll:.6} vs {:.6} (rel {rel:.2e}): {:.40}",
            case.mean_nll, case.text
        );
        assert!(
            rel <= 1e-3,
            "mean NLL {nll} vs {} (rel {rel:e})",
            case.mean_nll
        );
        assert_eq!(
            top10(&last),
            case.last_top10_ids,
            "top-10 ids for {:?}",
            case.text
        );
        for (id, want) in case.last_top10_ids.iter().zip(&case.last_top10_logits) {
            let got = last[*id as usize];
            assert!((got - want).abs() <= 1e-3, "logit of {id}: {got} vs {want}");
        }
    }
}
