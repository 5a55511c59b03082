//! `ferrotune chat` driven through stdin (not a terminal: one message per line, one answer
//! per line) gives the answers of the library call `ChatModel::chat` with the same history,
//! and `clear` resets the history. Greedy decoding, so the answers are deterministic.
//!
//! Needs the demo model (`scripts/fetch_model.sh`); fails, never skips, without it.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use candle_core::Device;
use ferrotune_config::Config;
use ferrotune_data::message::{Message, Role};
use ferrotune_infer::chat::ChatModel;

use common::demo_gguf;

fn overrides() -> Vec<String> {
    vec![
        format!("model_name_or_path={}", demo_gguf().display()),
        "template=smollm2".into(),
        "do_sample=false".into(),
        "max_new_tokens=12".into(),
    ]
}

#[test]
fn stdin_chat_equals_the_library_and_clear_resets_history() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrotune"))
        .arg("chat")
        .args(overrides())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (q1, q2) = ("What is the capital of France?", "And of Italy?");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{q1}\n{q2}\nclear\n{q2}\nexit\nnever read\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    println!("{lines:#?}");
    assert_eq!(
        lines.len(),
        4,
        "one line per input line up to `exit`: {lines:?}"
    );
    assert_eq!(lines[2], "History has been removed.");

    let cfg = Config::from_overrides(&overrides()).unwrap();
    let chat = ChatModel::from_config(&cfg, &Device::Cpu).unwrap();
    let ask = |messages: &[Message]| chat.chat(messages, None, None, &mut |_| {}).unwrap().text;
    let a1 = ask(&[Message::new(Role::User, q1)]);
    assert!(a1.contains("Paris"), "{a1}");
    let a2 = ask(&[
        Message::new(Role::User, q1),
        Message::new(Role::Assistant, a1.clone()),
        Message::new(Role::User, q2),
    ]);
    let a2_alone = ask(&[Message::new(Role::User, q2)]);
    let one_line = |s: &str| s.replace('\n', "\\n");
    assert_eq!(lines[0], one_line(&a1));
    assert_eq!(lines[1], one_line(&a2), "second answer uses the history");
    assert_eq!(
        lines[3],
        one_line(&a2_alone),
        "after `clear` the history is gone"
    );
    assert_ne!(
        a2, a2_alone,
        "the history changes the answer, so the check above means something"
    );
}
