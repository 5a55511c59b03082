//! `ferrotune chat <config.yaml> [key=value ...]`: a terminal chat with a model (plus merged
//! adapters), as LLaMA-Factory's `llamafactory-cli chat` (`chat/chat_model.py` `run_chat`):
//! answers stream as they are generated, the history is kept, `clear` removes it and `exit`
//! quits; the system prompt is the template's default or `default_system`.
//!
//! When stdin is not a terminal (a pipe or a file), each input line is one user message and
//! each answer is printed on one line (newlines inside it written as `\n`), so scripts and
//! tests can drive it: every input line gives exactly one output line.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use candle_core::Device;
use clap::Args;
use ferrotune_data::message::{Message, Role};
use ferrotune_infer::chat::ChatModel;

use super::ConfigArgs;

/// Arguments of `ferrotune chat`.
#[derive(Debug, Clone, Args)]
pub struct ChatArgs {
    /// Print prompt and answer tokens with prefill and decode tokens/s after each answer (to
    /// stderr).
    #[arg(long)]
    pub verbose: bool,
    /// The config and its overrides.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs the chat loop on stdin/stdout until `exit` or the end of input.
///
/// # Errors
/// Config and loading errors, generation errors, and I/O errors on stdin/stdout.
pub fn run(args: &ChatArgs) -> anyhow::Result<ExitCode> {
    let Some(cfg) = args.config.load()? else {
        bail!("`ferrotune chat` needs a config file or key=value arguments (model_name_or_path, template, adapter_name_or_path, ...)");
    };
    let chat = ChatModel::from_config(&cfg, &Device::Cpu)?;
    let interactive = std::io::stdin().is_terminal();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if interactive {
        writeln!(out, "Welcome to the CLI application, use `clear` to remove the history, use `exit` to exit the application.")?;
    }
    let mut history: Vec<Message> = Vec::new();
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            write!(out, "\nUser: ")?;
            out.flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading stdin")?;
        let query = line.trim();
        match query {
            "exit" => break,
            "clear" => {
                history.clear();
                writeln!(out, "History has been removed.")?;
                continue;
            }
            "" if interactive => continue,
            _ => {}
        }
        history.push(Message::new(Role::User, query));
        let answer = if interactive {
            write!(out, "Assistant: ")?;
            let mut on_text = |piece: &str| {
                // A failed write to the terminal shows on the next write below.
                let _ = write!(out, "{piece}");
                let _ = out.flush();
            };
            let answer = chat.chat(&history, None, None, &mut on_text)?;
            writeln!(out)?;
            answer
        } else {
            let answer = chat.chat(&history, None, None, &mut |_| {})?;
            writeln!(out, "{}", answer.text.replace('\n', "\\n"))?;
            answer
        };
        out.flush()?;
        if args.verbose {
            let s = &answer.stats;
            eprintln!(
                "[{} prompt tokens at {:.1} tokens/s, {} new tokens at {:.1} tokens/s]",
                s.prompt_tokens,
                s.prefill_tokens_per_second(),
                s.generated_tokens,
                s.decode_tokens_per_second()
            );
        }
        history.push(Message::new(Role::Assistant, answer.text.clone()));
    }
    Ok(ExitCode::SUCCESS)
}
