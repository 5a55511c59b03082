//! Bad generation input on the demo model gives errors that name the problem, before any
//! forward pass: a prompt as long as the context, no room for new tokens, an empty prompt and
//! an id outside the vocabulary.

mod common;

use common::demo_generator;
use ferrotune_infer::{GenerationParams, InferError};

#[test]
fn bad_prompts_and_budgets_are_refused_with_their_numbers() {
    let generator = demo_generator();
    let context = generator.model().config.max_position_embeddings;
    let vocab = generator.model().config.vocab_size;
    let ok = vec![1u32, 2, 3];

    // A prompt that fills the whole context leaves no position for a new token.
    let long = vec![28u32; context];
    let err = generator
        .generate(&[ok.clone(), long], &GenerationParams::greedy(4))
        .unwrap_err();
    assert!(
        matches!(err, InferError::PromptTooLong { row: 1, len, limit } if len == context && limit == context)
    );
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("prompt 1 has {context} tokens"))
            && msg.contains("max_position_embeddings"),
        "{msg}"
    );

    // max_new_tokens 0 with no max_length: nothing could be generated.
    let mut params = GenerationParams::greedy(0);
    params.max_length = 0;
    let err = generator
        .generate(std::slice::from_ref(&ok), &params)
        .unwrap_err();
    assert!(
        matches!(
            err,
            InferError::InvalidParam {
                key: "max_new_tokens",
                ..
            }
        ),
        "{err}"
    );

    // max_new_tokens 0 with a max_length the prompt already fills.
    params.max_length = 3;
    let err = generator
        .generate(std::slice::from_ref(&ok), &params)
        .unwrap_err();
    assert!(
        matches!(
            err,
            InferError::InvalidParam {
                key: "max_length",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("the prompt has 3 tokens"), "{err}");

    let err = generator
        .generate(&[ok.clone(), Vec::new()], &GenerationParams::greedy(4))
        .unwrap_err();
    assert!(matches!(err, InferError::EmptyPrompt { row: 1 }), "{err}");

    let err = generator
        .generate(&[vec![1, vocab as u32]], &GenerationParams::greedy(4))
        .unwrap_err();
    assert!(
        matches!(err, InferError::TokenOutOfRange { row: 0, token, vocab_size } if token as usize == vocab && vocab_size == vocab),
        "{err}"
    );

    // After all of that, the same generator still answers.
    let (out, _) = generator
        .generate(&[ok], &GenerationParams::greedy(2))
        .unwrap();
    assert_eq!(out[0].token_ids.len(), 2);
}
