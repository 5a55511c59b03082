//! Encoded examples of one split, one variant per example kind, written and read as JSON lines
//! with LLaMA-Factory's column names.

use std::io::Write;

use ferrotune_hub::tokenizer::TokenizerBundle;
use serde::Serialize;

use crate::error::DataError;
use crate::processor::{print_example, Encoded, KtoEncoded, Packed, PairwiseEncoded};

/// The encoded examples of one split. The variant is the example kind the stage produces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenizedDataset {
    /// `stage: sft`: `input_ids` and `labels` (prompt masked), one per conversation.
    Supervised(Vec<Encoded>),
    /// `stage: sft` with `packing`/`neat_packing`: several examples per row.
    Packed(Vec<Packed>),
    /// `stage: rm`/`dpo`: chosen and rejected sequences sharing a prompt.
    Pairwise(Vec<PairwiseEncoded>),
    /// `stage: kto`: the example, a mismatched pair for the KL term, and its tag.
    Kto(Vec<KtoEncoded>),
    /// `stage: pt`: raw text plus EOS (cut to `cutoff_len`, or packed into blocks), with the
    /// pt collator's labels (the ids, -100 on pad-token positions); the attention mask is all
    /// ones.
    Pretrain(Vec<Encoded>),
    /// Prediction with generation and `stage: ppo`: the prompt as `input_ids`, the reference
    /// answer as `labels`.
    Unsupervised(Vec<Encoded>),
}

/// JSON row of a pretraining example: the example's own fields plus the all-ones
/// `attention_mask` LLaMA-Factory stores (the other kinds serialize as they are).
#[derive(Serialize)]
struct PretrainRow<'a> {
    input_ids: &'a [u32],
    labels: &'a [i64],
    attention_mask: Vec<u8>,
}

/// Applies `$body` to the example vector of any variant, bound as `$v`.
macro_rules! each_kind {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            TokenizedDataset::Supervised($v)
            | TokenizedDataset::Pretrain($v)
            | TokenizedDataset::Unsupervised($v) => $body,
            TokenizedDataset::Packed($v) => $body,
            TokenizedDataset::Pairwise($v) => $body,
            TokenizedDataset::Kto($v) => $body,
        }
    };
}

impl TokenizedDataset {
    /// Number of examples (rows: a pack counts once).
    pub fn len(&self) -> usize {
        each_kind!(self, v => v.len())
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The kind's name, as saved in `meta.json`: `supervised`, `packed`, `pairwise`, `kto`,
    /// `pretrain` or `unsupervised`.
    pub fn kind(&self) -> &'static str {
        match self {
            TokenizedDataset::Supervised(_) => "supervised",
            TokenizedDataset::Packed(_) => "packed",
            TokenizedDataset::Pairwise(_) => "pairwise",
            TokenizedDataset::Kto(_) => "kto",
            TokenizedDataset::Pretrain(_) => "pretrain",
            TokenizedDataset::Unsupervised(_) => "unsupervised",
        }
    }

    /// An empty dataset of the kind named `kind` (see [`TokenizedDataset::kind`]).
    pub(crate) fn empty_of_kind(kind: &str) -> Option<TokenizedDataset> {
        Some(match kind {
            "supervised" => TokenizedDataset::Supervised(Vec::new()),
            "packed" => TokenizedDataset::Packed(Vec::new()),
            "pairwise" => TokenizedDataset::Pairwise(Vec::new()),
            "kto" => TokenizedDataset::Kto(Vec::new()),
            "pretrain" => TokenizedDataset::Pretrain(Vec::new()),
            "unsupervised" => TokenizedDataset::Unsupervised(Vec::new()),
            _ => return None,
        })
    }

    /// Appends the examples of `other`, which must be of the same kind (else nothing happens
    /// and `false` is returned).
    pub(crate) fn extend(&mut self, other: TokenizedDataset) -> bool {
        use TokenizedDataset as T;
        match (self, other) {
            (T::Supervised(a), T::Supervised(b))
            | (T::Pretrain(a), T::Pretrain(b))
            | (T::Unsupervised(a), T::Unsupervised(b)) => a.extend(b),
            (T::Packed(a), T::Packed(b)) => a.extend(b),
            (T::Pairwise(a), T::Pairwise(b)) => a.extend(b),
            (T::Kto(a), T::Kto(b)) => a.extend(b),
            _ => return false,
        }
        true
    }

    /// Writes one compact JSON object per example, in order, each followed by `\n`, with
    /// LLaMA-Factory's column names, as in `fixtures/data/*.jsonl`: `input_ids`, `labels`
    /// (supervised, unsupervised); plus `attention_mask` (pretraining, all ones) and
    /// `position_ids` and, for neat packing, `sequence_boundaries` (packed);
    /// `chosen_input_ids`, `chosen_labels`, `rejected_input_ids`, `rejected_labels`
    /// (pairwise); `input_ids`, `labels`, `kl_input_ids`, `kl_labels`, `kto_tags` (kto).
    ///
    /// # Errors
    /// The writer's I/O errors.
    pub fn write_jsonl(&self, mut out: impl Write) -> std::io::Result<()> {
        let mut line = Vec::with_capacity(4096);
        for i in 0..self.len() {
            line.clear();
            self.write_row(i, &mut line)
                .map_err(std::io::Error::other)?;
            line.push(b'\n');
            out.write_all(&line)?;
        }
        Ok(())
    }

    /// Serializes example `i` (if it exists) as one JSON object into `buf`, with
    /// LLaMA-Factory's column names (the processor types' field names).
    fn write_row(&self, i: usize, buf: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        let buf = &mut *buf;
        match self {
            TokenizedDataset::Supervised(v) | TokenizedDataset::Unsupervised(v) => {
                v.get(i).map(|e| serde_json::to_writer(buf, e))
            }
            TokenizedDataset::Pretrain(v) => v.get(i).map(|e| {
                let row = PretrainRow {
                    input_ids: &e.input_ids,
                    labels: &e.labels,
                    attention_mask: vec![1; e.input_ids.len()],
                };
                serde_json::to_writer(buf, &row)
            }),
            TokenizedDataset::Packed(v) => v.get(i).map(|e| serde_json::to_writer(buf, e)),
            TokenizedDataset::Pairwise(v) => v.get(i).map(|e| serde_json::to_writer(buf, e)),
            TokenizedDataset::Kto(v) => v.get(i).map(|e| serde_json::to_writer(buf, e)),
        }
        .unwrap_or(Ok(()))
    }

    /// Parses one JSON line written by [`TokenizedDataset::write_jsonl`] and appends it.
    pub(crate) fn push_json(&mut self, line: &str) -> Result<(), serde_json::Error> {
        // A pretraining row's stored all-ones attention_mask is ignored on reading.
        match self {
            TokenizedDataset::Supervised(v)
            | TokenizedDataset::Unsupervised(v)
            | TokenizedDataset::Pretrain(v) => v.push(serde_json::from_str(line)?),
            TokenizedDataset::Packed(v) => v.push(serde_json::from_str(line)?),
            TokenizedDataset::Pairwise(v) => v.push(serde_json::from_str(line)?),
            TokenizedDataset::Kto(v) => v.push(serde_json::from_str(line)?),
        }
        Ok(())
    }

    /// LLaMA-Factory's printout of the first example (`print_data_example`): ids and decoded
    /// text of the inputs and labels (of the chosen and the rejected sequence for pairwise
    /// data); `None` when there are no examples.
    ///
    /// # Errors
    /// [`DataError::Tokenizer`] if decoding fails.
    pub fn describe_first(&self, tok: &TokenizerBundle) -> Result<Option<String>, DataError> {
        let text = match self {
            TokenizedDataset::Supervised(v)
            | TokenizedDataset::Pretrain(v)
            | TokenizedDataset::Unsupervised(v) => match v.first() {
                Some(e) => print_example(tok, &e.input_ids, &e.labels)?,
                None => return Ok(None),
            },
            TokenizedDataset::Packed(v) => match v.first() {
                Some(e) => print_example(tok, &e.input_ids, &e.labels)?,
                None => return Ok(None),
            },
            TokenizedDataset::Kto(v) => match v.first() {
                Some(e) => print_example(tok, &e.input_ids, &e.labels)?,
                None => return Ok(None),
            },
            TokenizedDataset::Pairwise(v) => match v.first() {
                Some(e) => format!(
                    "chosen:\n{}rejected:\n{}",
                    print_example(tok, &e.chosen_input_ids, &e.chosen_labels)?,
                    print_example(tok, &e.rejected_input_ids, &e.rejected_labels)?
                ),
                None => return Ok(None),
            },
        };
        Ok(Some(text))
    }
}
