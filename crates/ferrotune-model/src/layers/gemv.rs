//! `y = x·Wᵀ` for a few rows of `x`: the decode step's matrix–vector products.
//!
//! Shapes: R rows of `x` (1 per sequence in a decode step), K input features, N output
//! features; `x` `[R, K]`, `W` `[N, K]` (PyTorch layout), `y` `[R, N]`, all row-major f32.
//!
//! A GEMM library tiles for many rows; with one row the product is bound by reading `W`, so
//! here each row of `W` is read exactly once and dotted with every row of `x` (which stays in
//! L1), and the N output features are split into tasks of [`ROWS_PER_TASK`] shared by the
//! calling thread and a small team of helper threads ([`Team`]). A decode step runs about a
//! hundred such products back to back, each a few tens of microseconds: the team's threads
//! keep polling for the next one for a short while instead of sleeping, and the caller takes
//! tasks itself, so a product costs no thread wake-up (the rayon pool parks its threads and
//! makes a caller from outside the pool wait for them). The dot
//! products are plain loops over independent lanes, compiled three times (AVX-512F, AVX2+FMA,
//! baseline) and chosen at run time, so the compiler emits packed FMAs without a `target-cpu`
//! flag.
//!
//! Results equal candle's matmul up to f32 summation order (not bit for bit), so training,
//! which needs bit-stable numbers, never comes here: [`crate::layers::matmul_wt`] takes this
//! path only when no gradient is tracked.

use std::any::Any;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use candle_core::{DType, Tensor};

/// Largest row count of `x` for which the kernels of this module (and of
/// [`crate::layers::QuantizedWeight`]) are used instead of a GEMM.
pub const GEMV_MAX_ROWS: usize = 8;

/// Products smaller than this many weight elements (`N·K`, summed over the products of one
/// call) run on the calling thread alone: below it, handing out tasks costs more than it saves.
const PARALLEL_MIN_ELEMS: usize = 1 << 16;

/// Output features per parallel task (a multiple of 8).
const ROWS_PER_TASK: usize = 32;

/// Runs `f(first_out_row, yt_chunk)` over the output features of a product with `rows` rows
/// of `x` and returns `y` `[rows, out]`. `yt_chunk` is the chunk's slice of `yᵀ` `[out, rows]`
/// (for output row `first_out_row + i`, the values for every `x` row at `i·rows..(i+1)·rows`).
/// See [`for_out_rows_many`] for the threading.
pub(crate) fn for_out_rows<F>(rows: usize, out: usize, k: usize, f: F) -> Vec<f32>
where
    F: Fn(usize, &mut [f32]) + Sync,
{
    let mut ys = for_out_rows_many(rows, &[out], k, |_, first, yt| f(first, yt));
    ys.pop().unwrap_or_default()
}

/// [`for_out_rows`] for several products that share `x` (q/k/v, gate/up), in one parallel
/// region: `f(product, first_out_row, yt_chunk)` for the chunks of every product, whose
/// output counts are `outs`; returns one `y` `[rows, outs[p]]` per product.
///
/// Serial when `Σ outs·k` < [`PARALLEL_MIN_ELEMS`] or the pool has no worker (one thread);
/// else the chunks of [`ROWS_PER_TASK`] features are taken in order from a shared counter by
/// the calling thread and the pool's workers.
pub(crate) fn for_out_rows_many<F>(rows: usize, outs: &[usize], k: usize, f: F) -> Vec<Vec<f32>>
where
    F: Fn(usize, usize, &mut [f32]) + Sync,
{
    let mut yts: Vec<Vec<f32>> = outs.iter().map(|&out| vec![0f32; rows * out]).collect();
    if rows == 0 {
        return yts;
    }
    let total: usize = outs.iter().sum();
    let tasks: Vec<(usize, usize, &mut [f32])> = yts
        .iter_mut()
        .enumerate()
        .flat_map(|(p, yt)| {
            yt.chunks_mut(ROWS_PER_TASK * rows)
                .enumerate()
                .map(move |(i, chunk)| (p, i * ROWS_PER_TASK, chunk))
        })
        .collect();
    run_tasks(
        tasks,
        total * k >= PARALLEL_MIN_ELEMS,
        |(p, first, chunk)| f(p, first, chunk),
    );
    if rows == 1 {
        return yts;
    }
    // yᵀ [out, rows] → y [rows, out].
    yts.into_iter()
        .zip(outs)
        .map(|(yt, &out)| {
            let mut y = vec![0f32; rows * out];
            for (j, col) in yt.chunks_exact(rows).enumerate() {
                for (r, &v) in col.iter().enumerate() {
                    y[r * out + j] = v;
                }
            }
            y
        })
        .collect()
}

/// Runs `f` on every task, on the calling thread and the [`Team`] when `parallel` (and the
/// team has helpers), else in order on the calling thread.
fn run_tasks<T: Send>(tasks: Vec<T>, parallel: bool, f: impl Fn(T) + Sync) {
    let team = Team::global();
    if !parallel || team.helpers() == 0 {
        tasks.into_iter().for_each(f);
        return;
    }
    // Each task behind its own (uncontended) lock, taken exactly once.
    let slots: Vec<Mutex<Option<T>>> = tasks.into_iter().map(|t| Mutex::new(Some(t))).collect();
    team.run(slots.len(), &|i| {
        let task = slots
            .get(i)
            .and_then(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).take());
        if let Some(task) = task {
            f(task);
        }
    });
}

/// How long an idle helper polls for the next product before it yields its core.
const HELPER_SPIN: Duration = Duration::from_micros(200);

/// How long an idle helper keeps yielding (polling between yields) before it sleeps.
const HELPER_YIELD: Duration = Duration::from_millis(5);

/// The threads that share the tasks of one product: the caller and `helpers` threads started
/// once, as many in all as rayon's thread count (`RAYON_NUM_THREADS`, else the cores).
///
/// A product is published as a generation number; helpers poll for a new one (spinning, then
/// yielding, then sleeping on a condition variable), join it, and take task indices from a
/// shared counter until none are left, as does the caller. A helper that joins late finds no
/// task left; one that is not scheduled at all leaves its share to the others. The caller then
/// closes the generation and waits until no helper is inside it, so the job (a reference to a
/// closure on the caller's stack) is never used after [`Team::run`] returns.
struct Team {
    helpers: usize,
    shared: &'static Shared,
}

/// State shared between the caller of [`Team::run`] and the helpers.
struct Shared {
    /// Serializes callers; holds the last generation published.
    call: Mutex<u64>,
    /// The generation helpers may join, 0 when none is open.
    open: AtomicU64,
    /// The open job: its generation, the task closure and the task count.
    job: Mutex<Option<(u64, JobFn, usize)>>,
    /// The next task index to take.
    next: AtomicUsize,
    /// Helpers inside a generation (between joining and leaving it).
    busy: AtomicUsize,
    /// Helpers sleeping on `wake`.
    sleepers: Mutex<usize>,
    wake: Condvar,
    /// The first panic of a task on a helper, re-raised by the caller.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// A task closure `f(task_index)`, its lifetime erased while a generation is open.
type JobFn = &'static (dyn Fn(usize) + Sync);

thread_local! {
    /// Whether this thread is running tasks of a [`Team`] product (a nested product then runs
    /// on this thread alone instead of waiting for the team).
    static IN_TEAM: Cell<bool> = const { Cell::new(false) };
}

impl Team {
    /// The process-wide team, started on first use.
    fn global() -> &'static Team {
        static TEAM: OnceLock<Team> = OnceLock::new();
        TEAM.get_or_init(|| Team::start(rayon::current_num_threads().saturating_sub(1)))
    }

    /// Starts `helpers` threads (fewer if the system refuses to start some).
    fn start(helpers: usize) -> Team {
        let shared: &'static Shared = Box::leak(Box::new(Shared {
            call: Mutex::new(0),
            open: AtomicU64::new(0),
            job: Mutex::new(None),
            next: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            sleepers: Mutex::new(0),
            wake: Condvar::new(),
            panic: Mutex::new(None),
        }));
        let started = (0..helpers)
            .filter(|i| {
                std::thread::Builder::new()
                    .name(format!("ferrotune-gemv-{i}"))
                    .spawn(move || helper_loop(shared))
                    .is_ok()
            })
            .count();
        Team {
            helpers: started,
            shared,
        }
    }

    /// Helper threads besides the caller.
    fn helpers(&self) -> usize {
        self.helpers
    }

    /// Runs `f(t)` once for every `t` in `0..n_tasks`, on this thread and the helpers, and
    /// returns when all are done. A panic in a task is re-raised here.
    fn run(&self, n_tasks: usize, f: &(dyn Fn(usize) + Sync)) {
        if self.helpers == 0 || n_tasks <= 1 || IN_TEAM.with(Cell::get) {
            (0..n_tasks).for_each(f);
            return;
        }
        let sh = self.shared;
        let mut last = sh.call.lock().unwrap_or_else(PoisonError::into_inner);
        let generation = *last + 1;
        *last = generation;
        // SAFETY: the reference is published only while the generation is open, and this
        // function closes it and waits until no helper is inside it before `f` goes out of
        // scope (also on panic: the wait is in `Close::drop`).
        let job: JobFn = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), JobFn>(f) };
        *sh.job.lock().unwrap_or_else(PoisonError::into_inner) = Some((generation, job, n_tasks));
        sh.next.store(0, Ordering::SeqCst);
        sh.open.store(generation, Ordering::SeqCst);
        if *sh.sleepers.lock().unwrap_or_else(PoisonError::into_inner) > 0 {
            sh.wake.notify_all();
        }
        let close = Close(sh);
        IN_TEAM.with(|c| c.set(true));
        take_tasks(sh, f, n_tasks);
        IN_TEAM.with(|c| c.set(false));
        drop(close);
        if let Some(p) = sh
            .panic
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            std::panic::resume_unwind(p);
        }
    }
}

/// Closes the open generation and waits until no helper is inside it (on drop, so that a
/// panicking caller waits too).
struct Close(&'static Shared);

impl Drop for Close {
    fn drop(&mut self) {
        let sh = self.0;
        IN_TEAM.with(|c| c.set(false));
        sh.open.store(0, Ordering::SeqCst);
        let mut polls = 0u32;
        while sh.busy.load(Ordering::SeqCst) != 0 {
            polls += 1;
            if polls < 1000 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
        *sh.job.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// Takes task indices from the shared counter until none are left.
fn take_tasks(sh: &Shared, f: &(dyn Fn(usize) + Sync), n_tasks: usize) {
    loop {
        let t = sh.next.fetch_add(1, Ordering::SeqCst);
        if t >= n_tasks {
            break;
        }
        f(t);
    }
}

/// A helper thread: wait for a new generation, join it, take tasks, leave; forever.
fn helper_loop(sh: &'static Shared) {
    let mut seen = 0u64;
    loop {
        let generation = wait_for_generation(sh, seen);
        seen = generation;
        // Join: count in first, then check the generation is still open; the caller closes it
        // first, then waits for the count, so one of the two sees the other.
        sh.busy.fetch_add(1, Ordering::SeqCst);
        if sh.open.load(Ordering::SeqCst) == generation {
            let job = *sh.job.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((g, f, n_tasks)) = job {
                if g == generation {
                    IN_TEAM.with(|c| c.set(true));
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        take_tasks(sh, f, n_tasks)
                    }));
                    IN_TEAM.with(|c| c.set(false));
                    if let Err(p) = result {
                        sh.panic
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner)
                            .get_or_insert(p);
                    }
                }
            }
        }
        sh.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Polls until a generation other than `seen` is open: spinning for [`HELPER_SPIN`], then
/// yielding until [`HELPER_YIELD`], then sleeping until [`Team::run`] wakes it.
fn wait_for_generation(sh: &Shared, seen: u64) -> u64 {
    let new = |g: u64| g != 0 && g != seen;
    let mut since = Instant::now();
    let mut idle = Duration::ZERO;
    let mut polls = 0u32;
    loop {
        let g = sh.open.load(Ordering::SeqCst);
        if new(g) {
            return g;
        }
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(64) {
            idle = since.elapsed();
        }
        if idle < HELPER_SPIN {
            std::hint::spin_loop();
        } else if idle < HELPER_YIELD {
            std::thread::yield_now();
        } else {
            let mut sleepers = sh.sleepers.lock().unwrap_or_else(PoisonError::into_inner);
            *sleepers += 1;
            // Checked under the lock that `run` takes after opening a generation: no wake-up
            // is lost.
            while !new(sh.open.load(Ordering::SeqCst)) {
                sleepers = sh
                    .wake
                    .wait(sleepers)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            *sleepers -= 1;
            since = Instant::now();
            idle = Duration::ZERO;
        }
    }
}

/// `x` `[rows, k]` · `w`ᵀ with `w` `[out, k]` → `y` `[rows, out]`, all f32 row-major.
///
/// Meant for `rows` ≤ [`GEMV_MAX_ROWS`] (any count is correct, but a GEMM is faster for many
/// rows). The caller guarantees `x.len() == rows·k` and `w.len() == out·k`; shorter slices
/// give a result over the available elements only (no panic).
pub fn gemv_f32(x: &[f32], rows: usize, w: &[f32], out: usize, k: usize) -> Vec<f32> {
    let kernel = select_f32_kernel();
    for_out_rows(rows, out, k, |first, yt| {
        let n = yt.len() / rows.max(1);
        let start = (first * k).min(w.len());
        let end = ((first + n) * k).min(w.len());
        kernel(&w[start..end], x, rows, k, yt);
    })
}

/// Attention of one new token per sequence over its cached keys (a decode step):
/// `softmax(q·Kᵀ·scale)·V` per query head, query head `h` reading key/value head
/// `h / (H/K)` (GQA), with no mask. `q` `[B, H, 1, D]`, `key` and `v` `[B, K, S, D]` (the
/// cache's views: rows of `D` contiguous, any strides above) → `[B, 1, H·D]`, heads in order.
///
/// `Some` when all three are f32 on the CPU, track no gradient and have these shapes, else
/// `None` (use the tensor ops). Per head: `S` dot products of length `D`, the softmax with its
/// maximum subtracted, and `S` scaled rows of `V` summed; heads are split across the [`Team`]
/// when the work is large enough. Equal to the tensor path up to f32 summation order.
pub(crate) fn attend_one_query(
    q: &Tensor,
    key: &Tensor,
    v: &Tensor,
    scale: f32,
) -> candle_core::Result<Option<Tensor>> {
    let f32_cpu = |t: &Tensor| {
        !t.track_op() && t.device().is_cpu() && t.dtype() == DType::F32 && t.rank() == 4
    };
    if !(f32_cpu(q) && f32_cpu(key) && f32_cpu(v)) || key.dims() != v.dims() {
        return Ok(None);
    }
    let (b, h, t, d) = q.dims4()?;
    let (kb, kv_heads, s, kd) = key.dims4()?;
    if t != 1 || kb != b || kd != d || kv_heads == 0 || h % kv_heads != 0 || s == 0 {
        return Ok(None);
    }
    let n_rep = h / kv_heads;
    let qs = q.flatten_all()?.to_vec1::<f32>()?;
    let (k_storage, k_layout) = key.storage_and_layout();
    let (v_storage, v_layout) = v.storage_and_layout();
    let (Some(k_rows), Some(v_rows)) = (
        HeadRows::new(&k_storage, k_layout, d)?,
        HeadRows::new(&v_storage, v_layout, d)?,
    ) else {
        return Ok(None);
    };
    let mut out = vec![0f32; b * h * d];
    let tasks: Vec<(usize, &mut [f32])> = out.chunks_mut(d).enumerate().collect();
    let kernel = select_head_kernel();
    run_tasks(tasks, b * h * s * d >= PARALLEL_MIN_ELEMS, |(bh, y)| {
        let (row, head) = (bh / h, bh % h);
        let g = head / n_rep;
        let qh = &qs[bh * d..(bh + 1) * d];
        kernel(qh, k_rows.head(row, g), v_rows.head(row, g), scale, y);
    });
    Ok(Some(Tensor::from_vec(out, (b, 1, h * d), q.device())?))
}

/// Signature of the one-head attention kernels: `(q [D], keys [S, D], values [S, D], scale,
/// y [D])`, `y` zeroed by the caller.
type HeadKernel = fn(&[f32], &[f32], &[f32], f32, &mut [f32]);

/// The fastest one-head attention kernel this CPU runs.
fn select_head_kernel() -> HeadKernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return head_avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return head_avx2;
        }
    }
    head_plain
}

/// `a·b + c` rounded twice, as separate multiply and add instructions: the attention kernels
/// use it on every CPU, so their results do not depend on which one runs, and they round as
/// the tensor path's products and sums do (a fused multiply-add moved near-tied greedy picks
/// of the Q4_1 demo model).
#[inline(always)]
fn unfused_madd(a: f32, b: f32, c: f32) -> f32 {
    a * b + c
}

/// The body of the one-head kernels (see [`HeadKernel`]): scores `q·k_j·scale`, their softmax
/// (maximum subtracted), and `y = Σ_j p_j·v_j`.
#[inline(always)]
fn head_body(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    scale: f32,
    y: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    let d = q.len();
    if d == 0 {
        return;
    }
    let mut scores: Vec<f32> = keys
        .chunks_exact(d)
        .map(|k| dot_lanes(q, k, madd) * scale)
        .collect();
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
    let mut sum = 0f32;
    for x in &mut scores {
        *x = (*x - max).exp();
        sum += *x;
    }
    let inv = 1.0 / sum;
    for (p, v) in scores.iter().zip(values.chunks_exact(d)) {
        let p = p * inv;
        for (yi, vi) in y.iter_mut().zip(v) {
            *yi = madd(p, *vi, *yi);
        }
    }
}

fn head_plain(q: &[f32], keys: &[f32], values: &[f32], scale: f32, y: &mut [f32]) {
    head_body(q, keys, values, scale, y, unfused_madd);
}

#[cfg(target_arch = "x86_64")]
fn head_avx2(q: &[f32], keys: &[f32], values: &[f32], scale: f32, y: &mut [f32]) {
    #[target_feature(enable = "avx2")]
    fn inner(q: &[f32], keys: &[f32], values: &[f32], scale: f32, y: &mut [f32]) {
        head_body(q, keys, values, scale, y, unfused_madd);
    }
    // SAFETY: only selected by `select_head_kernel` after detecting AVX2.
    unsafe { inner(q, keys, values, scale, y) }
}

#[cfg(target_arch = "x86_64")]
fn head_avx512(q: &[f32], keys: &[f32], values: &[f32], scale: f32, y: &mut [f32]) {
    #[target_feature(enable = "avx512f")]
    fn inner(q: &[f32], keys: &[f32], values: &[f32], scale: f32, y: &mut [f32]) {
        head_body(q, keys, values, scale, y, unfused_madd);
    }
    // SAFETY: only selected by `select_head_kernel` after detecting AVX-512F.
    unsafe { inner(q, keys, values, scale, y) }
}

/// The `[B, K, S, D]` f32 cache view of keys or values, read in place: the S rows of one
/// head must lie back to back (stride D), as in the cache's buffers.
struct HeadRows<'a> {
    data: &'a [f32],
    offset: usize,
    /// Strides of B and K.
    strides: [usize; 2],
    /// S·D, the values of one head.
    len: usize,
}

impl<'a> HeadRows<'a> {
    /// `None` when the storage is not f32 on the CPU, a head's rows are not back to back, or
    /// the strides reach past the data.
    fn new(
        storage: &'a candle_core::Storage,
        layout: &candle_core::Layout,
        d: usize,
    ) -> candle_core::Result<Option<Self>> {
        let candle_core::Storage::Cpu(cpu) = storage else {
            return Ok(None);
        };
        let data = cpu.as_slice::<f32>()?;
        let ([b, k, s, dd], [sb, sk, ss, 1]) = (layout.dims(), layout.stride()) else {
            return Ok(None);
        };
        let offset = layout.start_offset();
        let end = offset + (b - 1) * sb + (k - 1) * sk + s * d;
        if *dd != d || (*ss != d && *s > 1) || end > data.len() {
            return Ok(None);
        }
        Ok(Some(Self {
            data,
            offset,
            strides: [*sb, *sk],
            len: s * d,
        }))
    }

    /// The `[S, D]` values of `(batch, head)`.
    fn head(&self, batch: usize, head: usize) -> &[f32] {
        let at = self.offset + batch * self.strides[0] + head * self.strides[1];
        &self.data[at..at + self.len]
    }
}

/// Signature of the f32 kernels: `(w_rows [n, k], x [rows, k], rows, k, yt [n, rows])`.
type F32Kernel = fn(&[f32], &[f32], usize, usize, &mut [f32]);

/// The fastest f32 kernel this CPU runs.
fn select_f32_kernel() -> F32Kernel {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return rows_f32_avx512;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return rows_f32_avx2;
        }
    }
    rows_f32_plain
}

/// Dot product over 32 independent lanes (so the loop vectorizes without reassociating a
/// single sum), `madd(a, b, acc)` being either a fused or a plain multiply-add.
#[inline(always)]
fn dot_lanes(a: &[f32], b: &[f32], madd: impl Fn(f32, f32, f32) -> f32) -> f32 {
    const LANES: usize = 32;
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] = madd(x[i], y[i], acc[i]);
        }
    }
    let mut tail = 0f32;
    for (&x, &y) in ta.iter().zip(tb) {
        tail = madd(x, y, tail);
    }
    // Pairwise fold of the lanes.
    let mut width = LANES / 2;
    while width > 0 {
        for i in 0..width {
            acc[i] += acc[i + width];
        }
        width /= 2;
    }
    acc[0] + tail
}

/// The body shared by the three f32 kernels (see [`F32Kernel`]).
#[inline(always)]
fn rows_f32_body(
    w: &[f32],
    x: &[f32],
    rows: usize,
    k: usize,
    yt: &mut [f32],
    madd: impl Fn(f32, f32, f32) -> f32 + Copy,
) {
    if k == 0 || rows == 0 {
        return;
    }
    for (w_row, y_col) in w.chunks_exact(k).zip(yt.chunks_exact_mut(rows)) {
        for (x_row, y) in x.chunks_exact(k).zip(y_col.iter_mut()) {
            *y = dot_lanes(w_row, x_row, madd);
        }
    }
}

fn rows_f32_plain(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
    rows_f32_body(w, x, rows, k, yt, |a, b, c| a * b + c);
}

#[cfg(target_arch = "x86_64")]
fn rows_f32_avx2(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
    #[target_feature(enable = "avx2,fma")]
    fn inner(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
        rows_f32_body(w, x, rows, k, yt, f32::mul_add);
    }
    // SAFETY: only selected by `select_f32_kernel` after detecting AVX2 and FMA.
    unsafe { inner(w, x, rows, k, yt) }
}

#[cfg(target_arch = "x86_64")]
fn rows_f32_avx512(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
    #[target_feature(enable = "avx512f,fma")]
    fn inner(w: &[f32], x: &[f32], rows: usize, k: usize, yt: &mut [f32]) {
        rows_f32_body(w, x, rows, k, yt, f32::mul_add);
    }
    // SAFETY: only selected by `select_f32_kernel` after detecting AVX-512F (which implies FMA
    // on every CPU that has it; `fma` is enabled alongside for the scalar `mul_add`).
    unsafe { inner(w, x, rows, k, yt) }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::layers::test_values as values;

    fn reference(x: &[f32], rows: usize, w: &[f32], out: usize, k: usize) -> Vec<f64> {
        let mut y = vec![0f64; rows * out];
        for r in 0..rows {
            for j in 0..out {
                y[r * out + j] = (0..k)
                    .map(|i| f64::from(x[r * k + i]) * f64::from(w[j * k + i]))
                    .sum();
            }
        }
        y
    }

    #[test]
    fn every_kernel_matches_a_f64_reference() {
        // k not a multiple of the lane count; out large enough to run in parallel tasks with a
        // partial last task; rows 1 (no transpose) and 3.
        let (out, k) = (1000, 577);
        let w = values(out * k, 1);
        for rows in [1, 3] {
            let x = values(rows * k, 2 + rows as u32);
            let want = reference(&x, rows, &w, out, k);
            let mut kernels: Vec<(&str, F32Kernel)> = vec![("plain", rows_f32_plain)];
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    kernels.push(("avx2", rows_f32_avx2));
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    kernels.push(("avx512", rows_f32_avx512));
                }
            }
            for (name, kernel) in kernels {
                let got = for_out_rows(rows, out, k, |first, yt| {
                    let n = yt.len() / rows;
                    kernel(&w[first * k..(first + n) * k], &x, rows, k, yt);
                });
                let max = got
                    .iter()
                    .zip(&want)
                    .map(|(&g, &r)| (f64::from(g) - r).abs())
                    .fold(0f64, f64::max);
                assert!(max < 1e-4, "{name}, rows {rows}: max |diff| {max}");
            }
            let got = gemv_f32(&x, rows, &w, out, k);
            assert_eq!(got.len(), rows * out);
        }
    }

    #[test]
    fn small_products_run_serially_and_give_the_same_values() {
        let (out, k, rows) = (7, 5, 2);
        let (w, x) = (values(out * k, 9), values(rows * k, 10));
        let got = gemv_f32(&x, rows, &w, out, k);
        let want = reference(&x, rows, &w, out, k);
        for (g, r) in got.iter().zip(&want) {
            assert!((f64::from(*g) - r).abs() < 1e-6, "{g} vs {r}");
        }
    }

    #[test]
    fn team_runs_every_task_once_and_nested_products_inline() {
        let counts: Vec<AtomicUsize> = (0..1000).map(|_| AtomicUsize::new(0)).collect();
        run_tasks((0..counts.len()).collect(), true, |t| {
            counts[t].fetch_add(1, Ordering::SeqCst);
            if t % 100 == 0 {
                // A product inside a task runs on that thread alone.
                let y = gemv_f32(&[1.0; 4], 1, &[2.0; 4 * 3], 3, 4);
                assert_eq!(y, vec![8.0; 3]);
            }
        });
        assert!(counts.iter().all(|c| c.load(Ordering::SeqCst) == 1));
        // Again with a large product split across the team.
        let (out, k) = (512, 256);
        let (w, x) = (values(out * k, 21), values(k, 22));
        let got = gemv_f32(&x, 1, &w, out, k);
        let want = reference(&x, 1, &w, out, k);
        for (g, r) in got.iter().zip(&want) {
            assert!((f64::from(*g) - r).abs() < 1e-4, "{g} vs {r}");
        }
    }

    /// `softmax(q·kᵀ·scale)·v` in f64 for one query head against `s` keys.
    fn attention_reference(q: &[f32], keys: &[&[f32]], vals: &[&[f32]], scale: f64) -> Vec<f64> {
        let scores: Vec<f64> = keys
            .iter()
            .map(|k| {
                q.iter()
                    .zip(*k)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum::<f64>()
                    * scale
            })
            .collect();
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        (0..q.len())
            .map(|i| {
                e.iter()
                    .zip(vals)
                    .map(|(p, v)| p / sum * f64::from(v[i]))
                    .sum()
            })
            .collect()
    }

    #[test]
    fn one_query_attention_reads_the_cache_views_and_matches_a_f64_reference(
    ) -> candle_core::Result<()> {
        use candle_core::{Device, Var};
        let dev = Device::Cpu;
        // B 2, H 9 query heads over K 3 key/value heads, D 64, S 13 of a 20-position buffer.
        let (b, h, kv, d, s, cap) = (2, 9, 3, 64, 13, 20);
        let q = Tensor::from_vec(values(b * h * d, 31), (b, h, 1, d), &dev)?;
        let kbuf = Tensor::from_vec(values(b * kv * cap * d, 32), (b, kv, cap, d), &dev)?;
        let vbuf = Tensor::from_vec(values(b * kv * cap * d, 33), (b, kv, cap, d), &dev)?;
        let (key, v) = (kbuf.narrow(2, 0, s)?, vbuf.narrow(2, 0, s)?);
        let scale = 1.0 / (d as f64).sqrt();
        let got = attend_one_query(&q, &key, &v, scale as f32)?.expect("served");
        assert_eq!(got.dims(), [b, 1, h * d]);
        let got = got.flatten_all()?.to_vec1::<f32>()?;
        let (qv, kv_all, vv_all) = (
            q.flatten_all()?.to_vec1::<f32>()?,
            kbuf.flatten_all()?.to_vec1::<f32>()?,
            vbuf.flatten_all()?.to_vec1::<f32>()?,
        );
        for row in 0..b {
            for head in 0..h {
                let g = head / (h / kv);
                let base = (row * kv + g) * cap * d;
                let rows = |all: &'_ [f32]| -> Vec<Vec<f32>> {
                    (0..s)
                        .map(|j| all[base + j * d..base + (j + 1) * d].to_vec())
                        .collect()
                };
                let (ks, vs) = (rows(&kv_all), rows(&vv_all));
                let ks: Vec<&[f32]> = ks.iter().map(Vec::as_slice).collect();
                let vs: Vec<&[f32]> = vs.iter().map(Vec::as_slice).collect();
                let qh = &qv[(row * h + head) * d..(row * h + head + 1) * d];
                let want = attention_reference(qh, &ks, &vs, scale);
                let at = (row * h + head) * d;
                for (i, w) in want.iter().enumerate() {
                    let g = f64::from(got[at + i]);
                    assert!(
                        (g - w).abs() < 1e-6,
                        "row {row} head {head} dim {i}: {g} vs {w}"
                    );
                }
            }
        }
        // Not served: two queries per row, or inputs that track a gradient.
        let q2 = Tensor::cat(&[&q, &q], 2)?;
        assert!(attend_one_query(&q2, &key, &v, 1.0)?.is_none());
        let qv = Var::from_tensor(&q)?;
        assert!(attend_one_query(qv.as_tensor(), &key, &v, 1.0)?.is_none());
        Ok(())
    }
}
