"""Reference timing of one DARTS search step in PyTorch (bench/darts_torch.py's network),
for comparison with `cellgraph bench` on the same machine and thread count.

One process runs one algorithm (bench/run_darts_bench starts a fresh process per algo so
that the peak RSS belongs to that algo alone). Random data, fixed seed: one train batch and
one val batch of [batch, 3, 32, 32] with labels in [0, 10), reused every step.

  --algo darts         first order. (a) arch step: zero the alpha grads, forward the val
                       batch with the weights' requires_grad off (no weight grads are
                       formed), cross entropy, backward, Adam(lr 3e-4, betas (0.5, 0.999),
                       wd 1e-3) on alpha. (b) weight step: forward the train batch with
                       alpha detached, backward, clip the grad norm to 5, SGD(lr 0.025,
                       momentum 0.9, wd 3e-4).
  --algo darts2        second order, arch step as in the brief with xi = the weight lr:
                       w' = w - xi(momentum*buf + grad_w L_train(w) + wd*w);
                       dalpha, dw' = grad L_val(w', alpha); R = 0.01/||dw'||;
                       hvp = (grad_alpha L_train(w + R dw') - grad_alpha L_train(w - R dw'))/2R;
                       alpha.grad = dalpha - xi*hvp; Adam. Then the same weight step.
                       w' is formed in place in the weights and restored from a copy.
  --algo nasp-forward  each edge runs only the argmax-of-alpha op (excluding none, at
                       weight 1): forward + backward of the weight step, no optimizer
                       step; a sparse reference.
  --algo nasp|ista|sparsenas|rarts|milenas
                       cellgraph's other algorithms, whole steps with their passes under
                       cellgraph's pass names: bench/algo_steps_torch.py describes each.

Tensors are channels_last by default (--memory-format): PyTorch's CPU depthwise-conv
backward in the default NCHW layout is about two orders of magnitude slower at these sizes.

The learning rate stays at its initial value (the cosine schedule moves it by ~1e-6 over a
few steps). Prints one JSON object; progress goes to stderr."""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn.functional as F

import algo_steps_torch
import darts_torch
from algo_steps_torch import (A_BETAS, A_LR, A_WD, HVP_R, W_CLIP, W_LR, W_MOMENTUM, W_WD,
                              frozen)

CLASSES, IMAGE = 10, (3, 32, 32)

# Phases timed per step, per algo; the step time is their sum.
PHASES = {
    "darts": ("arch_step", "weight_step"),
    "darts2": ("unroll", "unrolled_backward", "hessian_vector_product", "arch_update",
               "weight_step"),
    "nasp-forward": ("forward", "backward"),
    **algo_steps_torch.ALGOS,
}
ARCH_PHASES = ("unroll", "unrolled_backward", "hessian_vector_product", "arch_update")


def proc_status_bytes(field):
    """VmRSS / VmHWM etc. from /proc/self/status, in bytes (None where unavailable)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


class Stepper:
    def __init__(self, model, data, materialize_none):
        self.model = model
        self.weights = list(model.parameters())
        self.alphas = model.arch_parameters()
        self.x_train, self.y_train, self.x_val, self.y_val = data
        self.materialize_none = materialize_none
        self.w_opt = torch.optim.SGD(self.weights, lr=W_LR, momentum=W_MOMENTUM,
                                     weight_decay=W_WD)
        self.a_opt = torch.optim.Adam(self.alphas, lr=A_LR, betas=A_BETAS, weight_decay=A_WD)
        self.choice = (darts_torch.best_ops(model.alpha_normal),
                       darts_torch.best_ops(model.alpha_reduce))
        self.last_loss = None

    def loss(self, x, y, detach_alpha=False):
        return F.cross_entropy(self.model(x, detach_alpha, self.materialize_none), y)

    def weight_step(self):
        self.w_opt.zero_grad(set_to_none=True)
        loss = self.loss(self.x_train, self.y_train, detach_alpha=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.weights, W_CLIP)
        self.w_opt.step()
        self.last_loss = loss.item()

    def first_order_arch_step(self):
        self.a_opt.zero_grad(set_to_none=True)
        with frozen(self.weights):
            self.loss(self.x_val, self.y_val).backward()
        self.a_opt.step()

    # Second order, in the phases timed separately.
    def unroll(self):
        """Replaces w by w' in place; returns the copy of w."""
        loss = self.loss(self.x_train, self.y_train, detach_alpha=True)
        grads = torch.autograd.grad(loss, self.weights)
        backup = [w.detach().clone() for w in self.weights]
        xi = self.w_opt.param_groups[0]["lr"]
        with torch.no_grad():
            for w, g in zip(self.weights, grads):
                d = g + W_WD * w
                buf = self.w_opt.state.get(w, {}).get("momentum_buffer")
                if buf is not None:
                    d.add_(buf, alpha=W_MOMENTUM)
                w.sub_(d, alpha=xi)
        return backup

    def unrolled_backward(self):
        """dalpha, dw' of L_val at w'."""
        grads = torch.autograd.grad(self.loss(self.x_val, self.y_val),
                                    self.alphas + self.weights)
        return grads[:len(self.alphas)], grads[len(self.alphas):]

    def hessian_vector_product(self, backup, dw):
        """Finite difference of grad_alpha L_train at w +- R dw'; leaves w = backup."""
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in dw]))
        r = HVP_R / norm.item()
        sides = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, g in zip(self.weights, backup, dw):
                    w.copy_(w0).add_(g, alpha=sign * r)
            with frozen(self.weights):
                sides.append(torch.autograd.grad(self.loss(self.x_train, self.y_train),
                                                 self.alphas))
        with torch.no_grad():
            for w, w0 in zip(self.weights, backup):
                w.copy_(w0)
        return [(p - n) / (2 * r) for p, n in zip(*sides)]

    def arch_update(self, dalpha, hvp):
        xi = self.w_opt.param_groups[0]["lr"]
        for a, da, h in zip(self.alphas, dalpha, hvp):
            a.grad = da - xi * h
        self.a_opt.step()

    def nasp_forward(self):
        self.w_opt.zero_grad(set_to_none=True)
        logits = self.model.forward_single(self.x_train, *self.choice)
        return F.cross_entropy(logits, self.y_train)

    def nasp_backward(self, loss):
        loss.backward()
        self.last_loss = loss.item()

    def step(self, algo):
        """One step; returns {phase: seconds}."""
        times = {}
        clock = time.perf_counter

        def timed(name, fn, *args):
            start = clock()
            result = fn(*args)
            times[name] = clock() - start
            return result

        if algo == "darts":
            timed("arch_step", self.first_order_arch_step)
            timed("weight_step", self.weight_step)
        elif algo == "darts2":
            backup = timed("unroll", self.unroll)
            dalpha, dw = timed("unrolled_backward", self.unrolled_backward)
            hvp = timed("hessian_vector_product", self.hessian_vector_product, backup, dw)
            del backup, dw
            timed("arch_update", self.arch_update, dalpha, hvp)
            timed("weight_step", self.weight_step)
        elif algo == "nasp-forward":
            loss = timed("forward", self.nasp_forward)
            timed("backward", self.nasp_backward, loss)
        else:
            raise ValueError(algo)
        return times


def summary(values):
    return {"median_s": round(statistics.median(values), 6), "min_s": round(min(values), 6)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--algo", choices=sorted(PHASES), default="darts")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-format", choices=("channels_last", "contiguous"),
                        default="channels_last",
                        help="tensor layout of weights and data (default channels_last: "
                             "PyTorch's CPU depthwise-conv backward in NCHW is ~100x slower "
                             "at these sizes, see bench/README.md)")
    parser.add_argument("--materialize-none", action="store_true",
                        help="compute the none op as x*0 (original DARTS code) instead of "
                             "skipping its exactly-zero term")
    parser.add_argument("--nasp-projection", choices=("node", "edge"), default="node",
                        help="nasp: one-hot per node's 2 kept edges (default, cellgraph's "
                             "default) or per edge")
    parser.add_argument("--selection", metavar="FILE",
                        help="nasp, ista: run the candidates a `cellgraph bench --json` run of "
                             "the same algo, warm-up and steps ran (its weight_step_selections) "
                             "instead of this step's own draw, step by step, so both engines "
                             "time the same ops (bench/run_darts_bench passes it)")
    parser.add_argument("--nasp-autograd-all", action="store_true",
                        help="nasp: every candidate with autograd in the architecture step, "
                             "as the authors' code runs it, instead of forward-only")
    parser.add_argument("--density", type=float, default=1.0,
                        help="sparsenas: share of A's entries non-zero, a fixed seeded "
                             "pattern (default 1: A's dense start)")
    parser.add_argument("--profile-ops", action="store_true",
                        help="after the timed steps, run one more under torch.profiler and "
                             "add its self CPU seconds per aten op (`profiled_step_ops_s`) "
                             "to the JSON, for bench/profile_step's per-op table beside it")
    parser.add_argument("--check-weights", action="store_true",
                        help="print the weight counts for 3 and 1 input channels and exit "
                             "non-zero if they differ from the brief's")
    args = parser.parse_args()
    if args.selection and args.algo not in ("nasp", "ista"):
        parser.error(f"--selection: {args.algo} has no sparse selection to follow (nasp, ista)")
    if args.check_weights:
        sys.exit(0 if darts_torch.check_weights() else 1)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    load_start = list(os.getloadavg())
    baseline_rss = proc_status_bytes("VmRSS")
    baseline_hwm = proc_status_bytes("VmHWM")

    model = darts_torch.SearchNetwork(16, 8, CLASSES, IMAGE[0])
    model.train()
    data = (torch.randn(args.batch, *IMAGE), torch.randint(0, CLASSES, (args.batch,)),
            torch.randn(args.batch, *IMAGE), torch.randint(0, CLASSES, (args.batch,)))
    if args.memory_format == "channels_last":
        model.to(memory_format=torch.channels_last)
        data = (data[0].to(memory_format=torch.channels_last), data[1],
                data[2].to(memory_format=torch.channels_last), data[3])
    if args.algo in algo_steps_torch.ALGOS:
        stepper = algo_steps_torch.make(args.algo, model, data, args)
        step = stepper.step
    else:
        stepper = Stepper(model, data, args.materialize_none)
        step = lambda: stepper.step(args.algo)

    rows = []
    for i in range(args.warmup + args.steps):
        times = step()
        total = sum(times.values())
        kind = "warmup" if i < args.warmup else "step"
        loss = "" if stepper.last_loss is None else f"  loss={stepper.last_loss:.4f}"
        print(f"{args.algo} {kind} {i}: {total:.3f} s  "
              + " ".join(f"{k}={v:.3f}" for k, v in times.items()) + loss,
              file=sys.stderr, flush=True)
        if i >= args.warmup:
            rows.append((total, times))

    totals = [t for t, _ in rows]
    phases = {name: summary([times[name] for _, times in rows]) for name in PHASES[args.algo]}
    if args.algo == "darts2":
        # The whole arch step, comparable with darts' arch_step.
        phases["arch_step"] = summary([sum(times[n] for n in ARCH_PHASES) for _, times in rows])
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "engine": "pytorch " + torch.__version__,
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "input": list(IMAGE),
        "classes": CLASSES,
        "algo": args.algo,
        "weights": darts_torch.count_weights(model),
        # RARTS' second network (y), the same shape as the first.
        **({"y_weights": darts_torch.count_weights(stepper.model_y)}
           if args.algo == "rarts" else {}),
        **({"density": args.density} if args.algo == "sparsenas" else {}),
        # Sparse steps: candidate ops each pass ran in the last step, over all cells,
        # [with autograd, forward-only] (none is never run).
        **({"candidates_run": stepper.candidates_run}
           if getattr(stepper, "candidates_run", None) and args.algo in ("nasp", "ista",
                                                                         "sparsenas") else {}),
        # Sparse steps: the candidates each step's weight pass ran (entry 0: before the
        # first step), cellgraph's own when --selection was given.
        **({"weight_step_selections": stepper.selections,
            "selection": f"cellgraph's ({args.selection})" if args.selection else "own"}
           if getattr(stepper, "selections", None) and args.algo in ("nasp", "ista") else {}),
        "arch_parameters": sum(a.numel() for a in model.arch_parameters()),
        "memory_format": args.memory_format,
        "none_op": "materialized" if args.materialize_none else "skipped",
        "steps": args.steps,
        "warmup": args.warmup,
        **summary(totals),
        "phases": phases,
        "step_s": [round(t, 6) for t in totals],
        "final_train_loss": stepper.last_loss,
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "vm_hwm_bytes": proc_status_bytes("VmHWM"),
        "baseline_rss_bytes": baseline_rss,
        "baseline_hwm_bytes": baseline_hwm,
        # 1/5/15-minute load averages of the machine when the run began and ended: the
        # timings are only as good as the machine was quiet.
        "load_average_start": load_start,
        "load_average_end": list(os.getloadavg()),
    }
    result["peak_rss_increase_bytes"] = result["peak_rss_bytes"] - baseline_rss
    if args.profile_ops:
        result["profiled_step_ops_s"], result["profiled_step_op_calls"] = profile_ops(step)
    print(json.dumps(result, indent=1))


def profile_ops(step):
    """Self CPU seconds and calls per aten op over one step under torch.profiler, largest
    first (ops under a millisecond left out). The profiler's own cost is in the figures (a profiled DARTS
    step's aten ops summed to 16.7 s against 15.4 s for the same process's unprofiled steps,
    1 thread, on the 2-core machine): compare shares, not totals, with
    profile_step's."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    ops = [(e.key, e.self_cpu_time_total / 1e6, e.count) for e in prof.key_averages()
           if e.key.startswith("aten::")]
    ops = [op for op in sorted(ops, key=lambda op: -op[1]) if op[1] >= 1e-3]
    return {k: round(v, 4) for k, v, _ in ops}, {k: n for k, _, n in ops}


if __name__ == "__main__":
    main()
