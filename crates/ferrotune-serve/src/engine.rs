//! The batching engine: one thread owns the model and steps every active sequence together,
//! prefilling new prompts and decoding one token per running sequence (continuous batching,
//! Yu et al. 2022, "Orca", §3.2: iteration-level scheduling).
//!
//! Shapes: N active sequences, V vocabulary, T prompt tokens.
//!
//! Each sequence has its own batch-1 [`KvCache`]. A step is one
//! [`CausalLM::forward_multi`](ferrotune_model::CausalLM::forward_multi) over every active
//! sequence: the prompts of the sequences that joined since the last step (prefill) and one
//! token of each running sequence (decode), packed as rows. The row-wise layers run chunk by
//! chunk through the kernels each sequence would get alone (a chunk of up to
//! [`GEMV_MAX_ROWS`] decode rows reads each weight
//! once for all of them), so a sequence's logits do not depend on what else is running and
//! greedy answers equal [`ferrotune_infer::Generator`]'s. Prompts join at most
//! [`PREFILL_TOKENS_PER_STEP`] tokens per step (a lone longer prompt still joins), and a
//! prompt longer than [`PREFILL_CHUNK`] is prefilled over several steps, a chunk per step
//! (chunked prefill), so that neither a burst of new prompts nor one long prompt stalls the
//! running streams for more than one bounded step at a time. While
//! sequences are running, new prompts are gathered until a quarter of the slots can take them
//! at once (or the oldest has waited [`PREFILL_MAX_WAIT_STEPS`] steps): their prefill is then
//! one GEMM that reads the f32 weights once for all of them, instead of once per prompt. Finished
//! sequences and those whose client went away (their event channel closed) leave at once.
//!
//! Prefix caching: the caches of the latest prompts are kept, [`PREFIX_POOL_POSITIONS`]
//! positions in all; a new prompt that begins like one of them (the template's system prompt,
//! an earlier turn) starts from a copy of that cache ([`KvCache::fork`]) and prefills only the
//! rest. Prefill is a GEMM whose rows do not depend on each other and attention is
//! causal, so the result is exactly that of prefilling the whole prompt; the shortcut is taken
//! only when the rest is longer than the few-row kernels take, so that it is a GEMM too.

use std::collections::{HashMap, VecDeque};
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ferrotune_infer::sampling::next_token;
use ferrotune_infer::{GenerationParams, Generator, StreamDecoder};
use ferrotune_model::layers::GEMV_MAX_ROWS;
use ferrotune_model::KvCache;
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::mpsc::UnboundedSender;

/// How one sequence chooses its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Sampling {
    /// Greedy or sampled decoding, temperature, top-p, top-k, repetition penalty, seed and
    /// `skip_special_tokens`, as [`GenerationParams`] (`max_new_tokens` is ignored here).
    pub params: GenerationParams,
    /// OpenAI's presence penalty in `[-2, 2]`: subtracted once from the logit of every token
    /// generated so far.
    pub presence_penalty: f32,
    /// OpenAI's frequency penalty in `[-2, 2]`: subtracted from a token's logit once per time
    /// it was generated.
    pub frequency_penalty: f32,
}

/// One sequence to generate.
#[derive(Debug, Clone)]
pub struct SeqRequest {
    /// Index of the sequence within its request (OpenAI's `choices[].index`).
    pub index: usize,
    /// The prompt, non-empty, shorter than the model's context.
    pub prompt_ids: Vec<u32>,
    /// Token choice.
    pub sampling: Sampling,
    /// New tokens allowed (≥ 1); cut further to the model's context.
    pub max_new_tokens: usize,
    /// Stop strings: generation ends before the first occurrence of any of them, which is not
    /// sent.
    pub stop: Vec<String>,
    /// The prompt ends inside this open JSON object text (a forced tool call's arguments from
    /// their `{`): the sequence stops once that object closes, after its `}`.
    pub open_json: Option<String>,
    /// Where the events go, tagged with `index`; a closed channel cancels the sequence.
    pub events: UnboundedSender<(usize, SeqEvent)>,
}

/// Why a sequence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// A stop token or stop string.
    Stop,
    /// Its token budget or the model's context.
    Length,
}

/// What the engine reports about a sequence.
#[derive(Debug, Clone, PartialEq)]
pub enum SeqEvent {
    /// The next piece of text (never a broken UTF-8 character, never part of a stop string).
    Text(String),
    /// The sequence ended.
    Finished {
        /// Why.
        finish: Finish,
        /// Prompt tokens.
        prompt_tokens: usize,
        /// Generated tokens, the stop token included.
        completion_tokens: usize,
    },
    /// The sequence failed (a model error, or the server shutting down).
    Failed(String),
}

/// Handle to the engine thread. The thread ends once [`Engine::shutdown`] (or dropping every
/// sender) has closed its input and the running sequences have ended.
#[derive(Debug)]
pub struct Engine {
    tx: Mutex<Option<Sender<SeqRequest>>>,
    cancel_all: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Engine {
    /// Starts the engine thread over `generator` (model, tokenizer, stop ids), decoding at most
    /// `max_concurrent` sequences together.
    pub fn start(generator: Generator, max_concurrent: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        let cancel_all = Arc::new(AtomicBool::new(false));
        let cancel = Arc::clone(&cancel_all);
        let thread = std::thread::Builder::new()
            .name("ferrotune-engine".into())
            .spawn(move || run(&generator, max_concurrent.max(1), &rx, &cancel))
            .ok();
        Self {
            tx: Mutex::new(Some(tx)),
            cancel_all,
            thread: Mutex::new(thread),
        }
    }

    /// A sender for new sequences.
    ///
    /// Errors: a message when the engine has stopped or could not start.
    pub fn sender(&self) -> Result<Sender<SeqRequest>, String> {
        let running = lock(&self.thread)
            .as_ref()
            .is_some_and(|t| !t.is_finished());
        match lock(&self.tx).as_ref() {
            Some(tx) if running => Ok(tx.clone()),
            _ => Err("the generation engine is not running".into()),
        }
    }

    /// Fails every running and waiting sequence with "server shutting down" (graceful
    /// shutdown past its grace period).
    pub fn cancel_all(&self) {
        self.cancel_all.store(true, Ordering::SeqCst);
    }

    /// Closes the engine's own sender and waits for the thread, which ends when the other
    /// senders are gone too and the running sequences have ended.
    pub fn shutdown(&self) {
        lock(&self.tx).take();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

/// Locks `m`, also after a panic elsewhere (the guarded values stay consistent).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A sequence being decoded.
struct Active<'t> {
    req: SeqRequest,
    cache: KvCache,
    rng: StdRng,
    /// Prompt and generated ids (the repetition penalty's view).
    seen: Vec<u32>,
    /// Generated id → count (presence and frequency penalties).
    counts: HashMap<u32, u32>,
    generated: usize,
    budget: usize,
    /// The tokens to feed at the next step: the prompt, then the last chosen token.
    pending: Vec<u32>,
    decoder: StreamDecoder<'t>,
    /// Decoded text held back because it may begin a stop string.
    held: String,
    /// A stop string was found: nothing after it may be sent.
    cut: bool,
    /// Tracks the open JSON object when `close_json_object` is set.
    json: Option<JsonDepth>,
}

/// Brace depth of JSON text outside strings, to see where an object closes.
#[derive(Debug, Clone, Copy, Default)]
struct JsonDepth {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl JsonDepth {
    /// Feeds `text`; returns the byte length up to and including the `}` that closes the
    /// outermost object, if it is in `text`.
    fn close_at(&mut self, text: &str) -> Option<usize> {
        for (i, c) in text.char_indices() {
            if self.in_string {
                match (self.escaped, c) {
                    (true, _) => self.escaped = false,
                    (false, '\\') => self.escaped = true,
                    (false, '"') => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match c {
                '"' => self.in_string = true,
                '{' | '[' => self.depth += 1,
                '}' | ']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return Some(i + c.len_utf8());
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// Steps a waiting prompt may be held back so that more prompts join it in one prefill (see
/// the module doc); a prompt arriving while nothing runs starts at once.
pub const PREFILL_MAX_WAIT_STEPS: usize = 8;

/// Cached positions kept for prefix caching, over all kept prompts (see the module doc); the
/// oldest prompts go first. Each position costs `layers · 2 · K · D · 4` bytes (46 KiB on the
/// demo model).
pub const PREFIX_POOL_POSITIONS: usize = 4096;

/// The caches of recent prompts, newest last, each holding exactly its prompt's positions.
#[derive(Default)]
struct PrefixPool {
    entries: VecDeque<(Vec<u32>, KvCache)>,
}

impl PrefixPool {
    /// The kept cache that `prompt` may start from and how many of its positions to take: the
    /// longest common beginning, cut so that more than [`GEMV_MAX_ROWS`] tokens remain to
    /// prefill; `None` when no kept prompt shares a token with it.
    fn lookup(&self, prompt: &[u32]) -> Option<(&KvCache, usize)> {
        let limit = prompt.len().checked_sub(GEMV_MAX_ROWS + 1)?;
        self.entries
            .iter()
            .map(|(ids, cache)| {
                let common = ids.iter().zip(prompt).take_while(|(a, b)| a == b).count();
                (cache, common.min(limit))
            })
            .filter(|&(_, n)| n > 0)
            .max_by_key(|&(_, n)| n)
    }

    /// Keeps a copy of `cache`, which holds exactly `prompt`'s positions; prompts the few-row
    /// kernels prefill are not kept (their positions differ in rounding from a GEMM's).
    fn insert(&mut self, prompt: &[u32], cache: &KvCache) {
        let kept = prompt.len() <= PREFIX_POOL_POSITIONS;
        if prompt.len() <= GEMV_MAX_ROWS || !kept || cache.len() != prompt.len() {
            return;
        }
        self.entries.retain(|(ids, _)| ids.as_slice() != prompt);
        if let Ok(copy) = cache.fork(prompt.len()) {
            self.entries.push_back((prompt.to_vec(), copy));
        }
        while self.positions() > PREFIX_POOL_POSITIONS {
            self.entries.pop_front();
        }
    }

    /// Cached positions over all kept prompts.
    fn positions(&self) -> usize {
        self.entries.iter().map(|(ids, _)| ids.len()).sum()
    }
}

/// The engine loop; returns when every sender is gone and nothing is running.
fn run(gen: &Generator, max_concurrent: usize, rx: &Receiver<SeqRequest>, cancel: &AtomicBool) {
    let mut waiting: VecDeque<SeqRequest> = VecDeque::new();
    let mut active: Vec<Active<'_>> = Vec::new();
    let mut open = true;
    let mut pool = PrefixPool::default();
    // Steps the front of the queue has been held back.
    let mut held_steps = 0;
    let group = (max_concurrent / 4).max(1);
    loop {
        if active.is_empty() && waiting.is_empty() {
            if !open {
                return;
            }
            match rx.recv() {
                Ok(r) => waiting.push_back(r),
                Err(_) => return,
            }
        }
        while open {
            match rx.try_recv() {
                Ok(r) => waiting.push_back(r),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => open = false,
            }
        }
        if cancel.load(Ordering::SeqCst) {
            for r in waiting.drain(..) {
                let _ = r.events.send((r.index, SeqEvent::Failed(SHUTDOWN.into())));
            }
            for a in active.drain(..) {
                let _ = a
                    .req
                    .events
                    .send((a.req.index, SeqEvent::Failed(SHUTDOWN.into())));
            }
            continue;
        }
        // Clients that went away leave before any more work is spent on them.
        waiting.retain(|r| !r.events.is_closed());
        active.retain(|a| !a.req.events.is_closed());
        let joinable = waiting
            .len()
            .min(max_concurrent - active.len().min(max_concurrent));
        let gather = !active.is_empty() && joinable < group && held_steps < PREFILL_MAX_WAIT_STEPS;
        held_steps = if gather && joinable > 0 {
            held_steps + 1
        } else {
            0
        };
        // Prompts still being prefilled take their next chunk's share of this step.
        let mut prompt_tokens: usize = active
            .iter()
            .filter(|a| a.generated == 0)
            .map(|a| prefill_chunk(a.pending.len()))
            .sum();
        while active.len() < max_concurrent && !gather {
            let Some(len) = waiting.front().map(|r| {
                let reused = pool.lookup(&r.prompt_ids).map_or(0, |(_, n)| n);
                r.prompt_ids.len() - reused
            }) else {
                break;
            };
            if prompt_tokens > 0 && prompt_tokens + len > PREFILL_TOKENS_PER_STEP {
                break;
            }
            let Some(req) = waiting.pop_front() else {
                break;
            };
            prompt_tokens += len;
            match token_budget(gen, &req) {
                Ok(budget) => {
                    let prefix = pool.lookup(&req.prompt_ids);
                    active.push(start(gen, req, budget, prefix));
                }
                Err(msg) => {
                    tracing::error!(error = %msg, "request refused by the engine");
                    let _ = req.events.send((req.index, SeqEvent::Failed(msg)));
                }
            }
        }
        if let Err(msg) = step(gen, &mut active) {
            for a in active.iter_mut() {
                fail(a, &msg);
            }
        }
        for a in active.iter().filter(|a| a.generated == 1) {
            pool.insert(&a.req.prompt_ids, &a.cache);
        }
        active.retain(|a| a.budget > 0);
    }
}

const SHUTDOWN: &str = "the server is shutting down; the request was cancelled";

/// Most prompt tokens that join one step (see the module doc). On the demo model a step with
/// this many prompt tokens takes about as long as a few dozen decode steps.
pub const PREFILL_TOKENS_PER_STEP: usize = 512;

/// Most prompt tokens one sequence feeds in a step: a longer prompt is prefilled in chunks
/// over several steps (see the module doc), which also bounds its attention scores to
/// `[heads, chunk, S]`.
pub const PREFILL_CHUNK: usize = PREFILL_TOKENS_PER_STEP;

/// How many of `len` pending prompt tokens to feed this step: all of them up to
/// [`PREFILL_CHUNK`], else a chunk that leaves more than [`GEMV_MAX_ROWS`] tokens for later, so
/// that every chunk is one GEMM like the whole prompt alone (rows of a GEMM do not depend on
/// each other and attention is causal: the same argument as prefix caching's).
fn prefill_chunk(len: usize) -> usize {
    if len <= PREFILL_CHUNK {
        len
    } else if len - PREFILL_CHUNK > GEMV_MAX_ROWS {
        PREFILL_CHUNK
    } else {
        len - (GEMV_MAX_ROWS + 1)
    }
}

/// New tokens `req` may generate: its `max_new_tokens`, cut to the model's context.
///
/// Errors: a message when the prompt is empty or leaves no room in the context.
fn token_budget(gen: &Generator, req: &SeqRequest) -> Result<usize, String> {
    let ctx = gen.model().config.max_position_embeddings;
    let budget = req
        .max_new_tokens
        .min(ctx.saturating_sub(req.prompt_ids.len()));
    if req.prompt_ids.is_empty() || budget == 0 {
        return Err(format!(
            "prompt of {} tokens leaves no room in the context of {ctx}",
            req.prompt_ids.len()
        ));
    }
    Ok(budget)
}

/// A new sequence allowed `budget` new tokens, its prompt pending (prefilled at the next step):
/// over an empty cache, or over a copy of the first `n` positions of `prefix = (cache, n)`
/// with only the rest pending.
fn start<'t>(
    gen: &'t Generator,
    req: SeqRequest,
    budget: usize,
    prefix: Option<(&KvCache, usize)>,
) -> Active<'t> {
    let model = gen.model();
    let mut json = None;
    if let Some(open) = &req.open_json {
        let mut j = JsonDepth::default();
        if j.close_at(open).is_none() {
            json = Some(j);
        }
    }
    let (cache, reused) = match prefix.and_then(|(c, n)| Some((c.fork(n).ok()?, n))) {
        Some((cache, n)) if n < req.prompt_ids.len() => {
            tracing::debug!(
                reused = n,
                prompt = req.prompt_ids.len(),
                "prefix cache hit"
            );
            (cache, n)
        }
        _ => (KvCache::new(&model.config), 0),
    };
    Active {
        cache,
        rng: StdRng::seed_from_u64(req.sampling.params.seed),
        seen: req.prompt_ids.clone(),
        counts: HashMap::new(),
        generated: 0,
        budget,
        pending: req.prompt_ids[reused..].to_vec(),
        decoder: StreamDecoder::new(gen.tokenizer(), req.sampling.params.skip_special_tokens),
        held: String::new(),
        cut: false,
        json,
        req,
    }
}

/// One step over every active sequence: feed each its pending tokens (a prompt's next chunk,
/// or the last token), choose and emit the next token of each whose prompt is all in.
///
/// Errors: a message when the forward pass fails or panics; the caches are then unusable.
fn step(gen: &Generator, active: &mut [Active<'_>]) -> Result<(), String> {
    if active.is_empty() {
        return Ok(());
    }
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| -> Result<(), String> {
        let tokens: Vec<Vec<u32>> = active
            .iter_mut()
            .map(|a| {
                let rest = a.pending.split_off(prefill_chunk(a.pending.len()));
                std::mem::replace(&mut a.pending, rest)
            })
            .collect();
        let lists: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
        let mut caches: Vec<&mut KvCache> = active.iter_mut().map(|a| &mut a.cache).collect();
        let logits = gen
            .model()
            .forward_multi(&lists, &mut caches)
            .and_then(|l| Ok(l.to_vec2::<f32>()?))
            .map_err(|e| e.to_string())?; // [N, V]
        for (a, mut row) in active.iter_mut().zip(logits) {
            // A sequence with prompt chunks still pending has no next token yet.
            if a.pending.is_empty() {
                choose_and_emit(gen, a, &mut row);
            }
        }
        Ok(())
    }));
    outcome.unwrap_or_else(|_| Err("internal error during a model step".into()))
}

fn fail(a: &mut Active<'_>, msg: &str) {
    tracing::error!(error = %msg, "model step failed");
    let _ = a
        .req
        .events
        .send((a.req.index, SeqEvent::Failed(msg.to_string())));
    a.budget = 0;
}

/// Chooses the next token of `a` from `logits` `[V]`, emits its text, and ends the sequence
/// (budget set to 0) on a stop, the budget, or a closed channel.
fn choose_and_emit(gen: &Generator, a: &mut Active<'_>, logits: &mut [f32]) {
    let (presence, frequency) = (
        a.req.sampling.presence_penalty,
        a.req.sampling.frequency_penalty,
    );
    if presence != 0.0 || frequency != 0.0 {
        for (&id, &n) in &a.counts {
            if let Some(s) = logits.get_mut(id as usize) {
                *s -= frequency * n as f32 + presence;
            }
        }
    }
    let token = next_token(logits, &a.seen, &a.req.sampling.params, &mut a.rng);
    a.seen.push(token);
    *a.counts.entry(token).or_insert(0) += 1;
    a.generated += 1;
    a.budget -= 1;
    a.pending = vec![token];
    let mut finish = None;
    if gen.stop_token_ids().binary_search(&token).is_ok() {
        finish = Some(Finish::Stop);
    } else {
        match a.decoder.push(token) {
            Ok(Some(piece)) => {
                if emit_text(a, &piece) {
                    finish = Some(Finish::Stop);
                }
            }
            Ok(None) => {}
            Err(e) => {
                fail(a, &e.to_string());
                return;
            }
        }
    }
    if finish.is_none() && a.budget == 0 {
        finish = Some(Finish::Length);
    }
    let Some(mut finish) = finish else {
        if a.req.events.is_closed() {
            a.budget = 0;
        }
        return;
    };
    // Flush what the decoder and the stop filter hold, unless a stop string cut the text.
    if !a.cut {
        if let Ok(Some(piece)) = a.decoder.finish() {
            if emit_text(a, &piece) {
                finish = Finish::Stop;
            }
        }
    }
    if !a.cut && !a.held.is_empty() {
        let rest = std::mem::take(&mut a.held);
        let _ = a.req.events.send((a.req.index, SeqEvent::Text(rest)));
    }
    let _ = a.req.events.send((
        a.req.index,
        SeqEvent::Finished {
            finish,
            prompt_tokens: a.req.prompt_ids.len(),
            completion_tokens: a.generated,
        },
    ));
    a.budget = 0;
}

/// Adds `piece` to the held text and sends what can no longer start a stop string. Returns
/// true when a stop string appeared: the text before it is sent, the rest dropped, and the
/// sequence marked `cut` (the caller ends it).
fn emit_text(a: &mut Active<'_>, piece: &str) -> bool {
    if let Some(end) = a.json.as_mut().and_then(|j| j.close_at(piece)) {
        // The forced JSON object closed: send through its `}` and stop.
        let text = format!("{}{}", std::mem::take(&mut a.held), &piece[..end]);
        let _ = a.req.events.send((a.req.index, SeqEvent::Text(text)));
        a.cut = true;
        return true;
    }
    a.held.push_str(piece);
    if let Some(at) = a
        .req
        .stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| a.held.find(s.as_str()))
        .min()
    {
        let before = a.held[..at].to_string();
        if !before.is_empty() {
            let _ = a.req.events.send((a.req.index, SeqEvent::Text(before)));
        }
        a.held.clear();
        a.cut = true;
        return true;
    }
    let keep = held_back(&a.held, &a.req.stop);
    let send_len = a.held.len() - keep;
    if send_len > 0 {
        let out: String = a.held.drain(..send_len).collect();
        let _ = a.req.events.send((a.req.index, SeqEvent::Text(out)));
    }
    false
}

/// Bytes at the end of `text` that are a proper prefix of some stop string (and so may still
/// grow into one); always on a character boundary.
fn held_back(text: &str, stops: &[String]) -> usize {
    let mut keep = 0;
    for s in stops {
        for (i, _) in s.char_indices().skip(1) {
            if text.ends_with(&s[..i]) {
                keep = keep.max(i);
            }
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::held_back;

    #[test]
    fn prefill_chunks_are_bounded_and_each_a_gemm() {
        use super::{prefill_chunk, GEMV_MAX_ROWS, PREFILL_CHUNK};
        assert_eq!(prefill_chunk(1), 1);
        assert_eq!(prefill_chunk(PREFILL_CHUNK), PREFILL_CHUNK);
        for len in PREFILL_CHUNK + 1..3 * PREFILL_CHUNK {
            let (mut left, mut chunks) = (len, Vec::new());
            while left > 0 {
                let k = prefill_chunk(left);
                chunks.push(k);
                left -= k;
            }
            assert!(
                chunks
                    .iter()
                    .all(|&k| k > GEMV_MAX_ROWS && k <= PREFILL_CHUNK),
                "{len}: {chunks:?}"
            );
        }
    }

    #[test]
    fn held_back_keeps_a_possible_stop_prefix() {
        let stops = vec!["END".to_string(), "\n\n".to_string()];
        assert_eq!(held_back("abc", &stops), 0);
        assert_eq!(held_back("abcE", &stops), 1);
        assert_eq!(held_back("abcEN", &stops), 2);
        assert_eq!(held_back("abc\n", &stops), 1);
        assert_eq!(held_back("é", &["éa".to_string()]), "é".len());
    }

    #[test]
    fn json_depth_finds_the_closing_brace_outside_strings() {
        let mut j = super::JsonDepth::default();
        assert_eq!(j.close_at("{"), None);
        assert_eq!(j.close_at(r#""a": "}\"", "b": [1, {"#), None);
        assert_eq!(j.close_at("}]} tail"), Some(3));
    }
}
