//! BLEU-4 and ROUGE-1/2/L against LLaMA-Factory's own `ComputeSimilarity`
//! (`fixtures/metrics/similarity.json`, made by `tools/make_metric_fixtures.py`): jieba words,
//! each pair's four scores, and the mean over every pair.

use std::path::PathBuf;

use ferrotune_train::metrics::{Similarity, SimilarityScorer};
use serde::Deserialize;

#[derive(Deserialize)]
struct Scores {
    #[serde(rename = "rouge-1")]
    rouge_1: f64,
    #[serde(rename = "rouge-2")]
    rouge_2: f64,
    #[serde(rename = "rouge-l")]
    rouge_l: f64,
    #[serde(rename = "bleu-4")]
    bleu_4: f64,
}

impl Scores {
    fn as_similarity(&self) -> Similarity {
        Similarity {
            rouge_1: self.rouge_1,
            rouge_2: self.rouge_2,
            rouge_l: self.rouge_l,
            bleu_4: self.bleu_4,
        }
    }
}

#[derive(Deserialize)]
struct Pair {
    name: String,
    predict: String,
    label: String,
    predict_tokens: Vec<String>,
    label_tokens: Vec<String>,
    scores: Scores,
}

#[derive(Deserialize)]
struct Fixture {
    pairs: Vec<Pair>,
    average: Scores,
}

fn fixture() -> Fixture {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/metrics/similarity.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run tools/make_metric_fixtures.py", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Largest |ours − reference| over the four scores.
fn max_diff(a: &Similarity, b: &Similarity) -> f64 {
    [
        a.rouge_1 - b.rouge_1,
        a.rouge_2 - b.rouge_2,
        a.rouge_l - b.rouge_l,
        a.bleu_4 - b.bleu_4,
    ]
    .iter()
    .fold(0.0f64, |m, d| m.max(d.abs()))
}

#[test]
fn jieba_words_match_python_jieba() {
    let scorer = SimilarityScorer::new();
    let fx = fixture();
    for p in &fx.pairs {
        assert_eq!(
            scorer.segment(&p.predict),
            p.predict_tokens,
            "{}: prediction words",
            p.name
        );
        assert_eq!(
            scorer.segment(&p.label),
            p.label_tokens,
            "{}: label words",
            p.name
        );
    }
}

#[test]
fn every_pair_scores_as_llamafactory() {
    let scorer = SimilarityScorer::new();
    let fx = fixture();
    assert!(fx.pairs.len() >= 30, "{} pairs", fx.pairs.len());
    let mut worst = (0.0f64, String::new());
    let mut failures = Vec::new();
    for p in &fx.pairs {
        let ours = scorer.score(&p.predict, &p.label);
        let want = p.scores.as_similarity();
        let d = max_diff(&ours, &want);
        if d > worst.0 {
            worst = (d, p.name.clone());
        }
        // Rounded to 4 decimals on both sides: equal unless a score sits on a rounding edge.
        if d > 1e-6 {
            failures.push(format!("{}: ours {ours:?}, LLaMA-Factory {want:?}", p.name));
        }
    }
    println!("largest per-pair difference: {} ({})", worst.0, worst.1);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn mean_over_pairs_matches_np_mean() {
    let scorer = SimilarityScorer::new();
    let fx = fixture();
    let scores: Vec<Similarity> = fx
        .pairs
        .iter()
        .map(|p| scorer.score(&p.predict, &p.label))
        .collect();
    let mean = Similarity::mean(&scores);
    let want = fx.average.as_similarity();
    println!("mean {mean:?}\nwant {want:?}");
    // Same per-pair values summed in numpy's order: bit-identical.
    assert_eq!(mean, want);
}

#[test]
fn empty_sides_score_zero_and_identical_texts_score_100() {
    let scorer = SimilarityScorer::new();
    let zero = Similarity::default();
    assert_eq!(scorer.score("", "reference"), zero);
    assert_eq!(scorer.score("prediction", ""), zero);
    assert_eq!(scorer.score(" \n\t", "reference"), zero);
    let same = scorer.score("我爱北京天安门。It works!", "我爱北京天安门。It works!");
    assert_eq!(
        same,
        Similarity {
            rouge_1: 100.0,
            rouge_2: 100.0,
            rouge_l: 100.0,
            bleu_4: 100.0
        }
    );
}
