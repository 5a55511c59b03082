//! One turn of a conversation: the unit shared by dataset converters and prompt templates.
//!
//! Mirrors LLaMA-Factory's `Role` enum (`data/data_utils.py`) and the `{"role", "content"}` dicts
//! its dataset converters emit.

use std::fmt;

/// Who speaks a [`Message`], as LLaMA-Factory names the roles (`user`, `assistant`, `system`,
/// `function`, `observation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The human side of the conversation.
    User,
    /// The model's turn: the tokens trained on.
    Assistant,
    /// A system prompt.
    System,
    /// A tool call written by the assistant (LLaMA-Factory's `function`).
    Function,
    /// A tool's result fed back to the model (LLaMA-Factory's `observation`).
    Observation,
}

impl Role {
    /// The lowercase name LLaMA-Factory uses: `user`, `assistant`, `system`, `function`,
    /// `observation`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Function => "function",
            Role::Observation => "observation",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One turn: its speaker and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// The text of the turn, verbatim from the dataset (no trimming).
    pub content: String,
}

impl Message {
    /// A message of `role` with `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}
