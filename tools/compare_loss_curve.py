"""Loss-curve parity: the same LLaMA-Factory YAML trained by LLaMA-Factory 0.9.5 and by ferrotune.

Runs `llamafactory-cli train` and `ferrotune train` on tools/loss_curve_alpaca.yaml (LoRA
rank 8 on every linear layer of the f32 demo model, alpaca_en_demo, 200 samples, cutoff 512,
batch 4, lr 1e-4, cosine, no warmup, no shuffling, float32, 50 steps), each into its own
temporary output_dir, reads both `trainer_log.jsonl` files and prints one row per optimizer
step: the two losses and their relative difference |ferrotune - llamafactory| / llamafactory,
the two learning rates and the grad norms (from each run's trainer_state.json, when written).
Then the largest relative difference, both runtimes, tokens/s and their ratio.

Exit status: 0 when every step's loss agrees within --tolerance (2 %) and every step's lr
within 1e-6 relative; 1 otherwise; 2 when a run fails.

Why later steps may differ slightly: LoRA's B starts at zero, so step 1's loss is the base
model's and must agree to the rounding of the logs; A is drawn Kaiming-uniform from each
tool's own RNG (torch's generator vs ferrotune's), so from step 2 on the two runs train
different (equally distributed) adapters.

Batching: ferrotune keeps every activation of the forward pass for the backward pass (it has no
gradient checkpointing), and one batch of 4 x 512 tokens of this model peaks above 15 GB (the
first attempt was OOM-killed on a 23 GB machine). So by default ferrotune runs micro-batches of
one example with gradient_accumulation_steps 4 (--ft-micro-batch): the same optimizer batches
in the same order, and because ferrotune, like transformers >= 4.46, averages the loss over the
scored tokens of the whole accumulated batch, the same loss and gradients up to float
summation order. LLaMA-Factory runs the YAML as it is.

Writes (unless --no-write) under --fixtures (default fixtures/loss_curve, or
fixtures/loss_curve/max_steps_<N> when --steps N is not 50):
  llamafactory.jsonl, ferrotune.jsonl   one line per step: {"step", "loss", "lr"} as logged
  summary.json                          tolerance, max relative diff and its step, lr check,
                                        runtimes, tokens/s, versions, the command lines
Note that max_steps sets the length of the cosine schedule, so a shorter run is a different
run (its own fixture folder), not a prefix of the 50-step one.

Options: --only llamafactory|ferrotune runs one side and compares it with the other side's
committed curve (in --fixtures); --lf-run DIR / --ft-run DIR reuse a finished run's
output_dir instead of training (--partial: compare the steps an unfinished run has logged so
far); --steps N overrides max_steps.

Run from anywhere (50 steps: about an hour on 2 quiet CPU cores, LLaMA-Factory then ferrotune):
  python3 tools/compare_loss_curve.py
  python3 tools/compare_loss_curve.py --steps 3      # the CI fixture read by
                                                     # crates/ferrotune/tests/loss_curve.rs
Requirements: cargo; LLaMA-Factory 0.9.5 from tools/requirements-llamafactory.txt (its
llamafactory-cli: --llamafactory-cli, $LLAMAFACTORY_CLI, default /work/pyref/lf/bin/
llamafactory-cli); models/smollm2-f32-hf (fixtures/README.md: made from the demo GGUF by
gguf_to_hf.py); the LLaMA-Factory demo data (--dataset-dir, $LF_DATA_DIR, default
<repo>/../shared/data/llamafactory). The script itself needs only the standard library.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "examples" / "loss_curve_alpaca.yaml"
FULL_STEPS = 50
LR_TOLERANCE = 1e-6


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=FULL_STEPS, help="max_steps for both runs")
    p.add_argument("--tolerance", type=float, default=0.02, help="max relative loss difference")
    p.add_argument("--only", choices=["llamafactory", "ferrotune"],
                   help="run one side; the other is read from the committed curve")
    p.add_argument("--lf-run", type=Path, help="finished LLaMA-Factory output_dir to reuse")
    p.add_argument("--ft-run", type=Path, help="finished ferrotune output_dir to reuse")
    p.add_argument("--fixtures", type=Path, help="where the curves and summary.json live")
    p.add_argument("--no-write", action="store_true", help="only print the comparison")
    p.add_argument("--note", help="free text stored in summary.json (how the runs were made)")
    p.add_argument("--partial", action="store_true",
                   help="compare the steps both runs logged so far (with --lf-run/--ft-run on "
                        "unfinished runs); implies --no-write")
    p.add_argument("--dataset-dir", type=Path,
                   default=Path(os.environ.get("LF_DATA_DIR", ROOT.parent / "shared/data/llamafactory")))
    p.add_argument("--llamafactory-cli", type=Path,
                   default=Path(os.environ.get("LLAMAFACTORY_CLI", "/work/pyref/lf/bin/llamafactory-cli")))
    p.add_argument("--ferrotune-bin", type=Path,
                   help="a built ferrotune binary (default: cargo build -p ferrotune --bins)")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads for LLaMA-Factory")
    p.add_argument("--ft-micro-batch", type=int, default=1,
                   help="ferrotune's per-device batch; gradient accumulation makes up the YAML's "
                        "optimizer batch (0 or the YAML's value: run the YAML's batching as is)")
    return p.parse_args()


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def read_json(path):
    return json.loads(Path(path).read_text()) if Path(path).is_file() else None


def train(name, cmd, out_dir, env=None):
    """Runs one training command, its output in out_dir/train.log; returns the wall time (s)."""
    print(f"[{name}] {' '.join(map(str, cmd))}", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.monotonic()
    with open(out_dir / "train.log", "w") as log:
        rc = subprocess.call(list(map(str, cmd)), cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
    wall = time.monotonic() - start
    if rc != 0:
        tail = (out_dir / "train.log").read_text()[-3000:]
        print(f"error: {name} exited with status {rc} after {wall:.0f} s; its log is "
              f"{out_dir / 'train.log'}, tail:\n{tail}", file=sys.stderr)
        sys.exit(2)
    print(f"[{name}] done in {wall:.0f} s", flush=True)
    return wall


def overrides(out_dir, args):
    return [f"output_dir={out_dir}", f"dataset_dir={args.dataset_dir}", f"max_steps={args.steps}"]


def run_llamafactory(args, out_dir):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", OMP_NUM_THREADS=str(args.threads),
               MKL_NUM_THREADS=str(args.threads))
    cmd = [args.llamafactory_cli, "train", CONFIG, *overrides(out_dir, args)]
    return cmd, train("llamafactory", cmd, out_dir, env)


def ferrotune_binary(args):
    if args.ferrotune_bin:
        return args.ferrotune_bin
    subprocess.check_call(["cargo", "build", "-p", "ferrotune", "--bins"], cwd=ROOT)
    return ROOT / "target" / "debug" / "ferrotune"


def config_value(key):
    """A top-level scalar of the shared YAML (its keys are plain `key: value` lines)."""
    for line in CONFIG.read_text().splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == key and not line.startswith((" ", "#")):
            return value.strip()
    sys.exit(f"error: {CONFIG} has no key {key}")


def micro_batching(args):
    """ferrotune's per_device_train_batch_size / gradient_accumulation_steps overrides that
    keep the YAML's optimizer batch (per_device_train_batch_size x gradient_accumulation_steps)
    with micro-batches of --ft-micro-batch examples; [] when they are the YAML's own."""
    batch = int(config_value("per_device_train_batch_size")) * int(config_value("gradient_accumulation_steps"))
    if args.ft_micro_batch == 0 or args.ft_micro_batch == int(config_value("per_device_train_batch_size")):
        return []
    if batch % args.ft_micro_batch != 0:
        sys.exit(f"error: --ft-micro-batch {args.ft_micro_batch} does not divide the optimizer batch {batch}")
    return [f"per_device_train_batch_size={args.ft_micro_batch}",
            f"gradient_accumulation_steps={batch // args.ft_micro_batch}"]


def run_ferrotune(args, out_dir):
    cmd = [ferrotune_binary(args), "train", CONFIG, *overrides(out_dir, args), *micro_batching(args)]
    return cmd, train("ferrotune", cmd, out_dir)


def curve(run_dir):
    """Per-step {"step", "loss", "lr"} from trainer_log.jsonl, plus grad norms by step from
    trainer_state.json's log_history when the run wrote one."""
    rows = [
        {"step": e["current_steps"], "loss": e["loss"], "lr": e["lr"]}
        for e in read_jsonl(run_dir / "trainer_log.jsonl")
        if "loss" in e
    ]
    state = read_json(run_dir / "trainer_state.json") or {}
    grad_norms = {e["step"]: e["grad_norm"] for e in state.get("log_history", []) if "grad_norm" in e}
    return rows, grad_norms


def portable(command, run_dir):
    """The command line with this machine's paths replaced: the run's output_dir by $OUT, the
    repository by `.` and the folder beside it by `..`."""
    return (command.replace(str(run_dir), "$OUT").replace(str(ROOT), ".")
            .replace(str(ROOT.parent), ".."))


def run_info(run_dir, wall_s, cmd):
    """Runtime figures of a finished run from its train_results.json."""
    results = read_json(run_dir / "train_results.json") or {}
    return {
        "train_runtime_s": results.get("train_runtime"),
        "wall_s": round(wall_s, 1) if wall_s is not None else None,
        "train_loss": results.get("train_loss"),
        "command": portable(" ".join(map(str, cmd)), run_dir) if cmd else None,
    }


def versions(args):
    code = ("import json, llamafactory, torch, transformers, peft; print(json.dumps({"
            "'llamafactory': llamafactory.__version__, 'torch': torch.__version__, "
            "'transformers': transformers.__version__, 'peft': peft.__version__}))")
    python = args.llamafactory_cli.parent / "python"
    out = {}
    try:
        out.update(json.loads(subprocess.check_output([str(python), "-c", code], text=True,
                                                      stderr=subprocess.DEVNULL)))
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError):
        pass
    binary = args.ferrotune_bin or ROOT / "target" / "debug" / "ferrotune"
    try:
        out["ferrotune"] = subprocess.check_output([str(binary), "--version"], text=True).split()[-1]
    except (OSError, subprocess.CalledProcessError, IndexError):
        pass
    return out


def rel(a, b):
    return abs(a - b) / abs(b) if b != 0 else abs(a - b)


def main():
    args = parse_args()
    fixtures = args.fixtures or (ROOT / "fixtures" / "loss_curve" if args.steps == FULL_STEPS
                                 else ROOT / "fixtures" / "loss_curve" / f"max_steps_{args.steps}")
    old_summary = read_json(fixtures / "summary.json") or {}
    tmp = Path(tempfile.mkdtemp(prefix="loss_curve_"))
    sides = {}
    for side, runner, reuse in (("llamafactory", run_llamafactory, args.lf_run),
                                ("ferrotune", run_ferrotune, args.ft_run)):
        if args.only and args.only != side and reuse is None:
            committed = fixtures / f"{side}.jsonl"
            if not committed.is_file():
                sys.exit(f"error: {committed} is missing: run both sides once without --only")
            sides[side] = {"rows": read_jsonl(committed), "grad_norms": {},
                           "info": old_summary.get(side, {}), "fresh": False}
            continue
        if reuse is not None:
            run_dir, cmd, wall = reuse, None, None
        else:
            run_dir = tmp / side
            cmd, wall = runner(args, run_dir)
        rows, grad_norms = curve(run_dir)
        sides[side] = {"rows": rows, "grad_norms": grad_norms,
                       "info": run_info(run_dir, wall, cmd), "fresh": True}
        if side == "ferrotune":
            log = read_jsonl(run_dir / "trainer_log.jsonl")
            sides[side]["total_tokens"] = log[-1].get("total_tokens") if log else None

    lf, ft = sides["llamafactory"], sides["ferrotune"]
    if args.partial:
        common = min(len(lf["rows"]), len(ft["rows"]))
        print(f"--partial: comparing the first {common} of {args.steps} steps; nothing is written")
        lf["rows"], ft["rows"], args.no_write = lf["rows"][:common], ft["rows"][:common], True
    elif len(lf["rows"]) != len(ft["rows"]) or len(lf["rows"]) != args.steps:
        sys.exit(f"error: llamafactory logged {len(lf['rows'])} steps, ferrotune {len(ft['rows'])}, "
                 f"expected {args.steps}; hint: are both curves from the same --steps?")

    print(f"\n{'step':>4} {'llamafactory':>12} {'ferrotune':>10} {'rel diff':>9} "
          f"{'lr (LF)':>11} {'lr (ft)':>11} {'grad_norm LF':>12} {'ft':>8}")
    worst, worst_step, lr_worst, lr_next_worst = 0.0, 0, 0.0, 0.0
    for i, (a, b) in enumerate(zip(lf["rows"], ft["rows"])):
        step = a["step"]
        d = rel(b["loss"], a["loss"])
        if d > worst:
            worst, worst_step = d, step
        lr_worst = max(lr_worst, rel(b["lr"], a["lr"]))
        if i + 1 < len(lf["rows"]):
            lr_next_worst = max(lr_next_worst, rel(b["lr"], lf["rows"][i + 1]["lr"]))
        gl, gf = lf["grad_norms"].get(step), ft["grad_norms"].get(step)
        mark = "  <-- over tolerance" if d > args.tolerance else ""
        print(f"{step:>4} {a['loss']:>12.4f} {b['loss']:>10.4f} {d:>9.2%} {a['lr']:>11.4e} {b['lr']:>11.4e} "
              f"{'' if gl is None else f'{gl:.4f}':>12} {'' if gf is None else f'{gf:.4f}':>8}{mark}")
    step1 = rel(ft["rows"][0]["loss"], lf["rows"][0]["loss"])
    print(f"\nmax relative loss difference: {worst:.3%} at step {worst_step} "
          f"(tolerance {args.tolerance:.0%}); step 1: {step1:.2e}")
    print(f"max relative lr difference: {lr_worst:.2e} (tolerance {LR_TOLERANCE:g})")
    lr_note = None
    if lr_worst > LR_TOLERANCE and lr_next_worst <= LR_TOLERANCE:
        lr_note = ("ferrotune's lr at step k equals LLaMA-Factory's at step k+1: ferrotune logs the "
                   "lr after the scheduler step (transformers 4.x), transformers 5 logs the lr the "
                   "step used")
        print(f"  note: {lr_note}")

    # Tokens of the whole run: only a finished ferrotune run (or the committed summary) has them.
    total_tokens = None if args.partial else ft.get("total_tokens") or old_summary.get("total_tokens")
    for side in ("llamafactory", "ferrotune"):
        info = sides[side]["info"]
        rt = info.get("train_runtime_s")
        if rt and total_tokens:
            info["tokens_per_second"] = round(total_tokens / rt, 2)
        print(f"{side:>12}: train_runtime {rt} s, wall {info.get('wall_s')} s, "
              f"{info.get('tokens_per_second')} tokens/s")
    lf_rt, ft_rt = lf["info"].get("train_runtime_s"), ft["info"].get("train_runtime_s")
    ratio = round(lf_rt / ft_rt, 3) if lf_rt and ft_rt else None
    print(f"runtime ratio llamafactory / ferrotune: {ratio} "
          f"(tokens/s over the {total_tokens} non-padding input tokens both runs see)")

    ok = worst <= args.tolerance and lr_worst <= LR_TOLERANCE
    if not args.no_write:
        fixtures.mkdir(parents=True, exist_ok=True)
        for side in ("llamafactory", "ferrotune"):
            if sides[side]["fresh"]:
                with open(fixtures / f"{side}.jsonl", "w") as f:
                    for r in sides[side]["rows"]:
                        f.write(json.dumps(r) + "\n")
        summary = {
            "config": str(CONFIG.relative_to(ROOT)),
            "ferrotune_overrides": micro_batching(args) if ft["fresh"] else
            old_summary.get("ferrotune_overrides"),
            "max_steps": args.steps,
            "tolerance": args.tolerance,
            "max_rel_diff": worst,
            "max_rel_diff_step": worst_step,
            "step1_rel_diff": step1,
            "lr_max_rel_diff": lr_worst,
            "lr_note": lr_note,
            "passed": ok,
            "note": args.note,
            "total_tokens": total_tokens,
            "runtime_ratio_llamafactory_over_ferrotune": ratio,
            "versions": {**old_summary.get("versions", {}), **versions(args)},
            "llamafactory": lf["info"],
            "ferrotune": ft["info"],
        }
        (fixtures / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(f"wrote {fixtures.relative_to(ROOT) if fixtures.is_relative_to(ROOT) else fixtures}")
    shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
