//! Turning conversations into the text a model was trained on, with LLaMA-Factory parity.
//!
//! Today this crate renders a model's own Hugging Face chat template (the Jinja2 program in
//! `tokenizer_config.json`, `chat_template.jinja` or GGUF's `tokenizer.chat_template`) byte for
//! byte as Python transformers' `apply_chat_template(..., tokenize=False)` does; datasets,
//! tokenization and label masking come later.
//!
//! | module | what it does |
//! |---|---|
//! | [`chat_template`] | compile and render HF chat templates ([`ChatTemplate`], [`RenderContext`]) |
//! | [`error`] | [`DataError`], the error of every fallible function here |
//! | [`pipeline`] | config → template, fixed tokenizer and encoded examples (`ferrotune preprocess`) |
//!
//! ```
//! use ferrotune_data::{ChatTemplate, RenderContext};
//!
//! let template = ChatTemplate::new(
//!     "{{ bos_token }}{% for m in messages %}{{ m.role | upper }}: {{ m.content | trim }}\n{% endfor %}",
//! )?;
//! let messages = serde_json::json!([
//!     {"role": "system", "content": "Be brief."},
//!     {"role": "user", "content": " Hello! "},
//! ]);
//! let ctx = RenderContext { bos_token: Some("<s>"), ..RenderContext::new(&messages) };
//! assert_eq!(template.render(&ctx)?, "<s>SYSTEM: Be brief.\nUSER: Hello!\n");
//! # Ok::<(), ferrotune_data::DataError>(())
//! ```

pub mod chat_template;
pub mod dataset;
pub mod error;
pub mod message;
pub mod pipeline;
pub mod processor;
pub mod template;

pub use chat_template::{ChatTemplate, RenderContext};
pub use error::DataError;
