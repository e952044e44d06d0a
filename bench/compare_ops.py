"""One search step of an algorithm per op, cellgraph beside PyTorch, on the same candidates.

  python3 bench/compare_ops.py ALGO [--threads 1] [--batch 64]

Runs, each in a fresh process:
  1. `cellgraph bench --warmup 1 --steps 1 --json`: the candidates each step ran
     (weight_step_selections; dense algos have none to share);
  2. `bench/profile_step --steps 1`: cellgraph's kernel seconds and calls per op over step
     1, after one warm-up step, from the same start as `cellgraph bench`;
  3. `bench/darts_step_torch.py --warmup 0 --steps 1 --profile-ops` (`--selection` with
     the file of 1 for nasp and ista): PyTorch's self CPU seconds and calls per aten op of
     its step 1 under torch.profiler.
and prints, per cellgraph op, both engines' seconds (forward, backward) with the aten ops
each stands for, and the calls, which are equal where both ran the same candidates (a
check that the comparison is like for like). The profiler's own cost is in PyTorch's
figures (~8% on a DARTS step): compare shares and large gaps, not small ones; a single
step moves by ±10% between processes here (bench/README.md).

Needs a build (build/bin/cellgraph, build/bench/profile_step) and `scripts/setup --bench`.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPACES = {"sparsenas": "examples/spaces/darts_cnn_sparsenas.json"}
# cellgraph op -> (aten ops of its forward, aten ops of its backward). A weighted sum is
# PyTorch's mul and add; the autograd engine's accumulation (add_) and copies are listed
# apart, as they stand for no one op.
ATEN = {
    "conv2d": (["aten::mkldnn_convolution"], ["aten::convolution_backward"]),
    "batch_norm": (["aten::native_batch_norm"], ["aten::native_batch_norm_backward"]),
    "relu": (["aten::clamp_min"], ["aten::threshold_backward"]),
    "max_pool": (["aten::max_pool2d_with_indices"], ["aten::max_pool2d_with_indices_backward"]),
    "avg_pool": (["aten::avg_pool2d"], ["aten::avg_pool2d_backward"]),
    "concat": (["aten::cat"], []),
    "weighted_sum": (["aten::mul", "aten::add"], []),
}
OTHER_ATEN = ["aten::add_", "aten::copy_", "aten::fill_", "aten::sum", "aten::empty"]


def run(cmd, env=None):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"compare_ops: {' '.join(cmd)} failed ({result.returncode}):\n"
                 f"{result.stderr[-2000:]}")
    return result.stdout


def profile_table(text):
    """profile_step's per-op rows {op: (fwd calls, fwd s, bwd calls, bwd s)}, the step's
    seconds and those outside kernels (vector ops included: NASP's early dots)."""
    ops, step, outside = {}, None, None
    for line in text.splitlines():
        m = re.match(r"(\S+)\s+(\d+)\s+([\d.]+)\s+(\d+)\s+([\d.]+)", line)
        if m and not line.startswith("op "):
            ops[m.group(1)] = (int(m.group(2)), float(m.group(3)), int(m.group(4)),
                               float(m.group(5)))
        m = re.search(r": ([\d.]+) s/step", line)
        if m:
            step = float(m.group(1))
        m = re.search(r"outside kernels ([\d.]+) s/step", line)
        if m:
            outside = float(m.group(1))
    return ops, step, outside


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("algo")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    space = os.path.join(ROOT, SPACES.get(args.algo, "examples/spaces/darts_cnn.json"))
    env = dict(os.environ, CELLGRAPH_THREADS=str(args.threads))
    env.setdefault("OMP_WAIT_POLICY", "passive")
    common = ["--batch", str(args.batch)]

    with tempfile.TemporaryDirectory() as tmp:
        selection = os.path.join(tmp, "selection.json")
        with open(selection, "w") as f:
            f.write(run([os.path.join(ROOT, "build/bin/cellgraph"), "bench", space, "--algo",
                         args.algo, "--threads", str(args.threads), "--warmup", "1",
                         "--steps", "1", "--json"] + common, env))
        shared = "weight_step_selections" in json.load(open(selection))
        ours, our_step, our_outside = profile_table(run(
            [os.path.join(ROOT, "build/bench/profile_step"), space, "--algo", args.algo,
             "--steps", "1"] + common, env))
        torch_cmd = [os.path.join(ROOT, ".venv-bench/bin/python"),
                     os.path.join(ROOT, "bench/darts_step_torch.py"), "--algo", args.algo,
                     "--threads", str(args.threads), "--warmup", "0", "--steps", "1",
                     "--profile-ops"] + common
        if shared and args.algo in ("nasp", "ista"):
            torch_cmd += ["--selection", selection]
        ref = json.loads(run(torch_cmd, env))
    seconds, calls = ref["profiled_step_ops_s"], ref["profiled_step_op_calls"]

    def theirs(names):
        return (sum(seconds.get(n, 0.0) for n in names), sum(calls.get(n, 0) for n in names))

    print(f"{args.algo}, batch {args.batch}, {args.threads} thread(s); candidates "
          + ("shared (PyTorch followed cellgraph's)" if "selection" in ref and shared
             else "dense" if not shared else "NOT shared: PyTorch drew its own"))
    print(f"step 1: cellgraph {our_step:.3f} s (profile_step; {our_outside:.3f} s outside "
          f"kernels, vector ops included); PyTorch's profiled aten ops sum to "
          f"{sum(seconds.values()):.3f} s")
    print(f"{'op':14} {'cg fwd s':>9} {'torch fwd':>9} {'ratio':>6} {'cg bwd s':>9} "
          f"{'torch bwd':>9} {'ratio':>6}  calls cg / torch (fwd; bwd)")
    for op, (fwd_names, bwd_names) in ATEN.items():
        fc, fs, bc, bs = ours.get(op, (0, 0.0, 0, 0.0))
        tf, tfc = theirs(fwd_names)
        tb, tbc = theirs(bwd_names)
        if fs == bs == tf == tb == 0:
            continue

        def r(a, b):
            return f"{a / b:6.2f}" if b else f"{'-':>6}"
        print(f"{op:14} {fs:9.3f} {tf:9.3f} {r(fs, tf)} {bs:9.3f} {tb:9.3f} {r(bs, tb)}  "
              f"{fc} / {tfc}; {bc} / {tbc}")
    rest = {op: v for op, v in ours.items() if op not in ATEN and v[1] + v[3] >= 0.001}
    if rest:
        print("cellgraph's other ops (fwd + bwd s): "
              + ", ".join(f"{op} {v[1] + v[3]:.3f}" for op, v in rest.items()))
    print("PyTorch's other aten ops (s): "
          + ", ".join(f"{n} {seconds[n]:.3f}" for n in OTHER_ATEN if n in seconds))


if __name__ == "__main__":
    main()
