"""Training speed and memory: ferrotune against HF transformers + PEFT and LLaMA-Factory 0.9.5.

One command runs the same fine-tune shape on every side, each run in its own process, one at a
time, and prints tokens/s, peak RSS and the ratios ferrotune / other:

* hf  (a): HF transformers + PEFT in a plain loop (tools/bench_train/hf_peft.py), set up as
  LLaMA-Factory sets up the YAML below on a CPU: LoRA r=8, alpha 16, dropout 0, every linear
  layer but the output layer, trainable weights in f32, fused AdamW, grad clipping 1.0;
  `bf16` = torch.autocast("cpu", bfloat16) around the forward with the checkpoint-dtype
  (f32) base weights, as the HF Trainer does for `bf16: true`; `gc` = reentrant gradient
  checkpointing per decoder layer; `full` = every weight trainable in f32.
* lf  (b): `llamafactory-cli train <yaml>` (LLaMA-Factory 0.9.5 on the HF Trainer).
* ft  (c): `ferrotune train <yaml>` with the very same YAML file.

The YAML is tools/bench_train/pt.yaml (stage pt, finetuning_type lora|full, lora_target all,
packing with cutoff_len --seq + 1 (LLaMA-Factory 0.9.5 packs rows of cutoff_len - 1 tokens),
per_device_train_batch_size --batch, max_steps = warm-up + measured steps, logging_steps 1,
constant learning rate 1e-5, seed 42, use_cpu) with `bf16` and
`disable_gradient_checkpointing` set per config. All sides load the same weights, the f32 HF
folder --model (models/smollm2-f32-hf, made from the demo GGUF by
shared/tools/gguf_to_hf.py), and train on the same token rows: tools/bench_train/make_data.py
writes a dataset (a prefix of LLaMA-Factory's c4_demo) whose pre-training packing gives
exactly batch x (warm-up + steps) rows of exactly --seq tokens, and the same rows as token
ids for the plain loop. No padding; labels = input_ids, the pad (= eos) positions set to
-100 as LLaMA-Factory's pt collator does; the row order differs (the HF Trainer and
ferrotune shuffle), the set of rows does not. The HF Trainer divides the summed loss by the
label count before the shift (n, not n - 1 per row), so LLaMA-Factory's logged losses are
(n - 1) / n of the others'.

Time: the measured steps only (model load, data preparation and the --warmup steps left out).
The plain loop times each step with perf_counter; for llamafactory and ferrotune the time at
the end of step k is read from trainer_log.jsonl as total_tokens / throughput (both write
LLaMA-Factory's LogCallback fields, timed from the start of the training loop), and the
measured time is t(warm-up + steps) - t(warm-up) (also measured by polling the log,
`train_s_polled`). tokens/s = batch x seq x steps / time.

Peak RSS: ru_maxrss of the run's process (os.wait4: the largest of the process and its
children); also the largest summed RSS of its process tree sampled every 50 ms. A run whose
tree grows past --mem-limit-gb (default 80% of the memory available at the start) is killed
and reported as such. Threads: --threads for all (torch.set_num_threads, OMP_NUM_THREADS,
MKL_NUM_THREADS, RAYON_NUM_THREADS). The 1/5/15-minute load averages are recorded before and
after every run: only ratios of one run on a quiet machine count.

Configs (--configs): lora_fp32_gc, lora_bf16_gc, lora_fp32, lora_bf16, full_fp32 by default;
also full_fp32_gc and lora_bf16w (hf only: base weights loaded in bf16, as "auto" would load a
bf16 checkpoint). Run order (`run_plan`): a config and its checkpointed twin as one
palindrome (X_gc hf, lf, ft, then X ft, lf, hf), so that both the ft/hf ratios and each side's
cost of checkpointing compare runs made minutes apart, not a quarter of an hour; a config
without its twin runs hf, lf, ft.

A ferrotune run that refuses a key (a feature not built yet) is reported as "not built"; a
bf16 run whose loss equals its fp32 twin's as "ok (bf16 ignored)".

    cargo build -p ferrotune --bins
    python3 tools/bench_train.py --out bench_train.json          # full size: 4 x 512, 3 steps
    python3 tools/bench_train.py --dry-run                         # 1 x 64, 1 step: plumbing check
    python3 tools/bench_train.py --only a,c --configs lora_fp32 --seq 128 --batch 1 --steps 2
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent / "bench_train"


@dataclass(frozen=True)
class Config:
    """One fine-tune setting, the same on every side."""

    finetuning_type: str  # lora | full
    bf16: bool
    gc: bool
    weights_bf16: bool = False  # hf only: base weights loaded in bf16


CONFIGS = {
    "lora_fp32_gc": Config("lora", bf16=False, gc=True),
    "lora_bf16_gc": Config("lora", bf16=True, gc=True),
    "lora_fp32": Config("lora", bf16=False, gc=False),
    "lora_bf16": Config("lora", bf16=True, gc=False),
    "full_fp32": Config("full", bf16=False, gc=False),
    "full_fp32_gc": Config("full", bf16=False, gc=True),
    "lora_bf16w": Config("lora", bf16=True, gc=False, weights_bf16=True),
}
DEFAULT_CONFIGS = ["lora_fp32_gc", "lora_bf16_gc", "lora_fp32", "lora_bf16", "full_fp32"]
SIDES = {"hf": "HF transformers + PEFT", "lf": "LLaMA-Factory 0.9.5", "ft": "ferrotune"}
SIDE_ALIASES = {"a": "hf", "b": "lf", "c": "ft", "hf": "hf", "lf": "lf", "ft": "ft"}


def load_avg() -> list[float]:
    """1, 5 and 15-minute load averages (as `uptime` prints them)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def cpu_info() -> dict:
    """The CPU's model name and the vector extensions that decide the GEMM paths (from
    /proc/cpuinfo): results from machines with different CPUs do not compare, and the
    machines here are not always the same kind (AVX-512 with AVX512-BF16 on some, AVX2 only
    on others; torch's bf16 matmuls are far slower without AVX512-BF16 or AMX)."""
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    flags = set(fields.get("flags", "").split())
    return {"model": fields.get("model name", "?"), "flags": [f for f in wanted if f in flags]}


def read_flat_yaml(path: Path) -> list[tuple[str, str]]:
    """`key: value` lines of a flat YAML file, comments and blank lines dropped, values kept
    as written."""
    items = []
    for line in path.read_text(encoding="utf-8").splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        key, sep, value = s.partition(":")
        if not sep:
            raise SystemExit(f"{path}: not a flat `key: value` line: {line!r}")
        items.append((key.strip(), value.strip()))
    return items


def yaml_scalar(v) -> str:
    """A Python scalar as YAML (JSON scalars are valid YAML)."""
    return json.dumps(v)


def write_yaml(path: Path, base: list[tuple[str, str]], overrides: dict) -> None:
    """Writes `base` with `overrides` (Python scalars) applied, new keys appended."""
    seen = set()
    lines = []
    for k, v in base:
        if k in overrides:
            lines.append(f"{k}: {yaml_scalar(overrides[k])}")
            seen.add(k)
        else:
            lines.append(f"{k}: {v}")
    lines += [f"{k}: {yaml_scalar(v)}" for k, v in overrides.items() if k not in seen]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def tree_rss_kb(pid: int) -> int:
    """Summed VmRSS (kB) of `pid` and its descendants, from /proc; 0 when gone."""
    total, stack, seen = 0, [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    stack += [int(c) for c in f.read().split()]
        except (OSError, ValueError):
            continue
    return total


def read_log(path: Path) -> list[dict]:
    """Complete training lines (those with `loss`) of a trainer_log.jsonl; [] when absent."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return []
    out = []
    for line in text.split("\n")[:-1]:  # the last piece is empty or a line being written
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in e and "current_steps" in e:
            out.append(e)
    return out


def run_process(cmd: list[str], env: dict, log_prefix: Path, timeout: float, mem_limit_kb: int,
                watch: Path | None) -> dict:
    """Runs `cmd` (own process group) to the end; returns rc, ru_maxrss, the sampled peak tree
    RSS, wall seconds, the first-seen time of each step line of `watch`, and the output tails.
    Kills the group past `timeout` seconds or `mem_limit_kb` of tree RSS."""
    out_path, err_path = log_prefix.with_suffix(".out"), log_prefix.with_suffix(".err")
    t0 = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=REPO, start_new_session=True)
        peak_tree, killed, seen_steps = 0, None, {}
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak_tree = max(peak_tree, tree_rss_kb(proc.pid))
            if watch is not None:
                now = time.monotonic() - t0
                for e in read_log(watch):
                    seen_steps.setdefault(e["current_steps"], now)
            if killed is None and peak_tree > mem_limit_kb:
                killed = f"killed: process tree RSS {peak_tree // 1024} MB over --mem-limit-gb"
                os.killpg(proc.pid, signal.SIGKILL)
            elif killed is None and time.monotonic() - t0 > timeout:
                killed = f"killed: over --timeout {timeout:.0f} s"
                os.killpg(proc.pid, signal.SIGKILL)
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    tail = lambda p: p.read_text(encoding="utf-8", errors="replace")[-4000:]  # noqa: E731
    return {
        "rc": proc.returncode,
        "ru_maxrss_kb": ru.ru_maxrss,
        "tree_peak_kb": peak_tree,
        "wall_s": wall,
        "killed": killed,
        "seen_steps": seen_steps,
        "stdout": tail(out_path),
        "stderr": tail(err_path),
    }


def log_times(entries: list[dict], warmup: int, steps: int) -> tuple[float | None, float | None]:
    """Measured seconds from LogCallback fields (total_tokens / throughput at the end of steps
    warmup and warmup + steps; 0 at step 0), and the mean loss over all steps."""
    by_step = {e["current_steps"]: e for e in entries}
    losses = [e["loss"] for e in entries]

    def t(k: int) -> float | None:
        if k == 0:
            return 0.0
        e = by_step.get(k)
        if e is None or not e.get("throughput") or not e.get("total_tokens"):
            return None
        return e["total_tokens"] / e["throughput"]

    a, b = t(warmup), t(warmup + steps)
    train_s = b - a if a is not None and b is not None else None
    return train_s, (sum(losses) / len(losses) if losses else None)


REFUSAL_WORDS = ("not built", "not supported", "unbuilt", "is not implemented", "not yet")


class Bench:
    """Runs every (config, side) of the benchmark and collects the results."""

    def __init__(self, args: argparse.Namespace, work: Path):
        self.a = args
        self.work = work
        self.data_dir = work / "data"
        self.base_yaml = read_flat_yaml(HERE / "pt.yaml")
        self.env = dict(os.environ)
        n = str(args.threads)
        self.env.update(
            OMP_NUM_THREADS=n,
            MKL_NUM_THREADS=n,
            RAYON_NUM_THREADS=n,
            TOKENIZERS_PARALLELISM="false",
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            DISABLE_VERSION_CHECK="1",
            HF_DATASETS_CACHE=str(work / "hf_datasets_cache"),
        )
        self.results: list[dict] = []

    def make_data(self) -> None:
        a = self.a
        rows = a.batch * (a.warmup + a.steps)
        cmd = [a.hf_python, str(HERE / "make_data.py"), "--model", a.model, "--source", a.source,
               "--rows", str(rows), "--seq", str(a.seq), "--out-dir", str(self.data_dir)]
        r = subprocess.run(cmd, env=self.env, cwd=REPO, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"make_data failed:\n{r.stderr[-3000:]}")
        print(f"# data: {r.stdout.strip()}", flush=True)

    def yaml_for(self, name: str, cfg: Config, out_dir: Path) -> Path:
        a = self.a
        path = self.work / f"{name}.yaml"
        write_yaml(path, self.base_yaml, {
            "model_name_or_path": a.model,
            "finetuning_type": cfg.finetuning_type,
            "dataset_dir": str(self.data_dir),
            # LLaMA-Factory cuts packed rows at cutoff_len - 1 (`DataArguments.__post_init__`:
            # `if self.packing: self.cutoff_len -= 1`), so rows of --seq need cutoff_len --seq + 1.
            "cutoff_len": a.seq + 1,
            "output_dir": str(out_dir),
            "per_device_train_batch_size": a.batch,
            "max_steps": a.warmup + a.steps,
            "bf16": cfg.bf16,
            "disable_gradient_checkpointing": not cfg.gc,
        })
        return path

    def run(self, name: str, side: str) -> dict:
        a, cfg = self.a, CONFIGS[name]
        tokens = a.batch * a.seq * a.steps
        res = {"side": side, "config": name, "finetuning_type": cfg.finetuning_type, "bf16": cfg.bf16,
               "gradient_checkpointing": cfg.gc, "batch": a.batch, "seq": a.seq, "warmup": a.warmup,
               "steps": a.steps, "threads": a.threads, "tokens": tokens}
        if cfg.weights_bf16 and side != "hf":
            return {**res, "status": "n/a", "note": "hf-only config"}
        out_dir = self.work / f"{side}_{name}"
        log_prefix = self.work / f"{side}_{name}"
        watch = None
        if side == "hf":
            cmd = [a.hf_python, str(HERE / "hf_peft.py"), "--model", a.model, "--rows",
                   str(self.data_dir / "rows.json"), "--finetuning-type", cfg.finetuning_type,
                   "--batch", str(a.batch), "--warmup", str(a.warmup), "--steps", str(a.steps),
                   "--threads", str(a.threads)]
            cmd += ["--bf16"] * cfg.bf16 + ["--gc"] * cfg.gc
            if cfg.weights_bf16:
                cmd += ["--weights-dtype", "bf16"]
        else:
            yaml = self.yaml_for(f"{side}_{name}", cfg, out_dir)
            cmd = [a.lf_cli, "train", str(yaml)] if side == "lf" else [a.ferrotune, "train", str(yaml)]
            watch = out_dir / "trainer_log.jsonl"
        res["command"] = " ".join(shlex.quote(c) for c in cmd)
        res["load_before"] = load_avg()
        p = run_process(cmd, self.env, log_prefix, a.timeout, int(a.mem_limit_gb * 1024 * 1024), watch)
        res["load_after"] = load_avg()
        res["peak_rss_mb"] = round(p["ru_maxrss_kb"] / 1024, 1)
        res["peak_tree_rss_mb"] = round(p["tree_peak_kb"] / 1024, 1)
        res["wall_s"] = round(p["wall_s"], 2)
        if p["killed"] or p["rc"] != 0:
            err = (p["stderr"] + p["stdout"]).strip()
            lines = err.splitlines() or [""]
            last = next((x for x in reversed(lines) if "error" in x.lower()), lines[-1])
            refused = side == "ft" and any(w in err.lower() for w in REFUSAL_WORDS)
            res["status"] = p["killed"] or ("not built" if refused else f"failed (rc {p['rc']})")
            res["note"] = last[-400:]
            return res
        train_s = loss = None
        if side == "hf":
            try:
                info = json.loads(p["stdout"].strip().splitlines()[-1])
            except (json.JSONDecodeError, IndexError):
                return {**res, "status": "failed (no result line)", "note": p["stdout"][-400:]}
            train_s, losses = info["train_s"], info["losses"]
            loss = sum(losses) / len(losses)
            res["timing"] = "perf_counter per step"
            res["step_s"] = [round(s, 3) for s in info["step_s"]]
            res["trainable_params"] = info["trainable_params"]
        else:
            entries = read_log(watch)
            train_s, loss = log_times(entries, a.warmup, a.steps)
            res["timing"] = "trainer_log total_tokens/throughput"
            seen = p["seen_steps"]
            if a.warmup in seen and a.warmup + a.steps in seen:
                res["train_s_polled"] = round(seen[a.warmup + a.steps] - seen[a.warmup], 3)
            if train_s is None and "train_s_polled" in res:
                train_s, res["timing"] = res["train_s_polled"], "trainer_log lines polled"
            last = max(entries, key=lambda e: e["current_steps"], default={})
            want = a.batch * a.seq * (a.warmup + a.steps)
            if last.get("total_tokens") not in (None, want):
                res["note"] = f"log counts {last.get('total_tokens')} tokens, expected {want}"
            if len(entries) != a.warmup + a.steps:
                return {**res, "status": f"failed ({len(entries)} step lines in the log)"}
        if not train_s:
            return {**res, "status": "failed (no timing)"}
        res.update(status="ok", train_s=round(train_s, 3), tokens_per_s=round(tokens / train_s, 2),
                   loss_mean=round(loss, 4) if loss is not None else None)
        return res


def flag_ignored_bf16(results: list[dict]) -> None:
    """Notes a bf16 run whose mean loss equals its fp32 twin's to every logged digit: bf16
    matmuls change the loss in the third or fourth decimal, so an equal loss means the key had
    no effect (a side that accepts `bf16` before its mixed precision is built)."""
    get = {(r["config"], r["side"]): r for r in results}
    for (name, side), r in get.items():
        twin = get.get((name.replace("bf16", "fp32"), side), {})
        if "bf16" in name and r.get("status") == "ok" and twin.get("status") == "ok" \
                and r.get("loss_mean") == twin.get("loss_mean"):
            r["note"] = (r.get("note", "") + " bf16 had no effect: loss equals the fp32 run's").strip()
            r["status"] = "ok (bf16 ignored)"


def ratio(x, y) -> str:
    return f"{x / y:.2f}" if x and y else "-"


def run_plan(configs: list[str], sides: list[str]) -> list[tuple[str, str]]:
    """The order of the runs: every ratio the tables print compares two runs made close
    together, since the machine's speed drifts over minutes (a busy neighbour). A config and
    its checkpointed twin (`X`, `X_gc`, both selected) run as one palindrome,
    `X_gc` hf, lf, ft, then `X` ft, lf, hf: each side's two runs are 1 to 5 runs apart (the
    cost of checkpointing) and ferrotune is 2 runs from HF in both configs (ft/hf). Other
    configs run their sides in turn."""
    sides_in_order = [s for s in SIDES if s in sides]
    plan: list[tuple[str, str]] = []
    paired: set[str] = set()
    for c in configs:
        base = c.removesuffix("_gc")
        if base not in configs or base + "_gc" not in configs:
            plan += [(c, s) for s in sides_in_order]
        elif base not in paired:
            paired.add(base)
            plan += [(base + "_gc", s) for s in sides_in_order]
            plan += [(base, s) for s in reversed(sides_in_order)]
    return plan


def tables(results: list[dict], configs: list[str]) -> str:
    """Markdown: every run, then ferrotune / other per config, then the cost of checkpointing."""
    get = {(r["config"], r["side"]): r for r in results}
    lines = ["| config | side | tokens/s | peak RSS MB | mean loss | status |",
             "|---|---|---:|---:|---:|---|"]
    for r in results:
        lines.append(f"| {r['config']} | {SIDES[r['side']]} | {r.get('tokens_per_s', '-')} | "
                     f"{r.get('peak_rss_mb', '-')} | {r.get('loss_mean', '-')} | {r['status']} |")
    lines += ["", "| config | tokens/s ft/hf | RSS ft/hf | tokens/s ft/lf | RSS ft/lf |",
              "|---|---:|---:|---:|---:|"]
    for c in configs:
        ft, hf, lf = get.get((c, "ft"), {}), get.get((c, "hf"), {}), get.get((c, "lf"), {})
        ok = lambda r: str(r.get("status", "")).startswith("ok")  # noqa: E731
        tps = lambda r: r.get("tokens_per_s") if ok(r) else None  # noqa: E731
        rss = lambda r: r.get("peak_rss_mb") if ok(r) else None  # noqa: E731
        lines.append(f"| {c} | {ratio(tps(ft), tps(hf))} | {ratio(rss(ft), rss(hf))} | "
                     f"{ratio(tps(ft), tps(lf))} | {ratio(rss(ft), rss(lf))} |")
    gc_rows = []
    for base in ("lora_fp32", "lora_bf16", "full_fp32"):
        for side in SIDES:
            r0, r1 = get.get((base, side), {}), get.get((base + "_gc", side), {})
            if str(r0.get("status", "")).startswith("ok") and str(r1.get("status", "")).startswith("ok"):
                cost = r0["tokens_per_s"] / r1["tokens_per_s"] - 1
                gc_rows.append(f"| {base} | {SIDES[side]} | {cost * 100:+.0f}% | "
                               f"{ratio(r1['peak_rss_mb'], r0['peak_rss_mb'])} |")
    if gc_rows:
        lines += ["", "| config | side | extra time with checkpointing | RSS with/without |",
                  "|---|---|---:|---:|", *gc_rows]
    return "\n".join(lines)


def rerender(log: Path, out: str | None) -> None:
    """Prints (and writes to `out`) the tables of the run lines in `log`, in run order."""
    header, results = {}, []
    for line in log.read_text(encoding="utf-8").splitlines():
        if not line.startswith("{"):
            continue
        obj = json.loads(line)
        if "bench" in obj:
            header = obj["bench"]
        elif "side" in obj:
            results.append(obj)
    configs = list(dict.fromkeys(r["config"] for r in results))
    flag_ignored_bf16(results)
    table = tables(results, configs)
    print(table)
    if out:
        Path(out).write_text(json.dumps({"bench": header, "runs": results, "table": table}, indent=1) + "\n",
                             encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=3, help="measured optimizer steps")
    ap.add_argument("--warmup", type=int, default=1, help="steps run before the measured ones")
    ap.add_argument("--seq", type=int, default=512,
                    help="tokens per row (the YAML gets cutoff_len = seq + 1)")
    ap.add_argument("--batch", type=int, default=4, help="rows per step (per_device_train_batch_size)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", default="hf,lf,ft", help="sides: a|hf, b|lf, c|ft, comma-separated")
    ap.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                    help=f"comma-separated, of: {', '.join(CONFIGS)}")
    ap.add_argument("--dry-run", action="store_true", help="--seq 64 --batch 1 --steps 1: plumbing check")
    ap.add_argument("--out", help="write the results here (JSON)")
    ap.add_argument("--model", default=str(REPO / "models/smollm2-f32-hf"))
    ap.add_argument("--source", default="/work/shared/data/llamafactory/c4_demo.jsonl",
                    help="jsonl of texts (field `text`) the rows are cut from")
    ap.add_argument("--hf-python", default="/work/pyref/venv/bin/python")
    ap.add_argument("--lf-cli", default="/work/pyref/lf/bin/llamafactory-cli")
    ap.add_argument("--ferrotune", default=str(REPO / "target/debug/ferrotune"))
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run")
    ap.add_argument("--mem-limit-gb", type=float, default=None,
                    help="kill a run whose process tree passes this RSS (default: 80%% of MemAvailable)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (logs, YAMLs, outputs)")
    ap.add_argument("--from-log", metavar="FILE",
                    help="no runs: rebuild the tables from the JSON lines a (stopped) run printed")
    args = ap.parse_args()
    if args.from_log:
        rerender(Path(args.from_log), args.out)
        return
    if args.dry_run:
        args.seq, args.batch, args.steps = 64, 1, 1
    sides = []
    for s in args.only.split(","):
        if s.strip() not in SIDE_ALIASES:
            raise SystemExit(f"--only: unknown side {s!r}; use a|hf, b|lf, c|ft")
        sides.append(SIDE_ALIASES[s.strip()])
    configs = [c.strip() for c in args.configs.split(",")]
    for c in configs:
        if c not in CONFIGS:
            raise SystemExit(f"--configs: unknown config {c!r}; known: {', '.join(CONFIGS)}")
    if args.mem_limit_gb is None:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
        args.mem_limit_gb = round(avail * 0.8 / 1024 / 1024, 1)
    if "ft" in sides and not os.access(args.ferrotune, os.X_OK):
        raise SystemExit(f"{args.ferrotune} not found: run `cargo build -p ferrotune --bins` first")

    work = Path(tempfile.mkdtemp(prefix="bench_train_"))
    bench = Bench(args, work)
    header = {"command": " ".join(shlex.quote(x) for x in sys.argv), "work_dir": str(work),
              "load_avg": load_avg(), "nproc": os.cpu_count(), "mem_limit_gb": args.mem_limit_gb,
              "seq": args.seq, "batch": args.batch, "warmup": args.warmup, "steps": args.steps,
              "threads": args.threads, "model": args.model, "cpu": cpu_info()}
    print(json.dumps({"bench": header}), flush=True)
    bench.make_data()
    for name, side in run_plan(configs, sides):
        r = bench.run(name, side)
        bench.results.append(r)
        print(json.dumps({k: v for k, v in r.items() if k != "command"}), flush=True)
    order = {(c, s): i for i, (c, s) in enumerate((c, s) for c in configs for s in sides)}
    bench.results.sort(key=lambda r: order[(r["config"], r["side"])])
    flag_ignored_bf16(bench.results)
    header["load_avg_end"] = load_avg()
    table = tables(bench.results, configs)
    print()
    print(f"load average (1/5/15 min) at start {header['load_avg']}, at end {header['load_avg_end']}")
    cpu = header["cpu"]
    print(f"cpu: {cpu.get('model', '?')}, {' '.join(cpu.get('flags', [])) or 'no AVX2'}")
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps({"bench": header, "runs": bench.results, "table": table},
                                             indent=1) + "\n", encoding="utf-8")
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work folder kept: {work}")


if __name__ == "__main__":
    main()
