"""Reference timing of one DARTS (first-order) search step of the DARTS recurrent search
network in PyTorch, for comparison with `cellgraph bench examples/spaces/darts_rnn.json` on
the same machine, sizes and thread count (bench/run_rnn_bench runs both).

Written from the DARTS paper (Liu et al., ICLR 2019, section 2 and appendix A.1.2) and the
behaviour of the authors' public code (quark0/darts, rnn/model_search.py, train_search.py,
architect.py), which this file follows where the paper is silent:

  network   embedding [V, H] -> the search cell unrolled over T steps -> output dropout ->
            decoder tied to the embedding weight, with its own bias [V] -> cross entropy
            over the B x T next tokens. Weights start uniform in +-0.04, the bias at 0.
  cell      [c0, h0] = [x_t * mask_x, h_{t-1} * mask_h] W0 (W0 [2H, 2H]);
            s0 = h_{t-1} + sigmoid(c0) * (tanh(h0) - h_{t-1}), then BN without affine.
            Node i = 1..8 has one matrix W_i [H, 2H] for all its predecessors j < i:
            [c, h] = (s_j * mask_h) W_i; the candidate op f in {tanh, relu, sigmoid,
            identity} gives the gated update s_j + sigmoid(c) * (f(h) - s_j); node i is the
            sum over its edges j and ops f of softmax(alpha[row j->i])_f times that update,
            then BN without affine (one softmax per edge row over the 5 ops, 36 rows, as in
            the authors' code; `none` is exactly zero and is skipped). h_t = mean(s1..s8).
  dropout   variational, DARTS train_search defaults: embedding rows 0 (--dropout-embedding),
            input 0.2 and output 0.75 (one mask per sequence over H, shared by all t),
            x 0.75 and h 0.25 (one [B, H] mask per forward pass, shared by all t and, for h,
            by every state entering a matrix). New masks on every forward pass.
  step      (a) architecture step on the validation batch, first order: zero alpha's grad,
            forward from the validation stream's hidden state with the weights'
            requires_grad off (no weight grads formed), backward, Adam (lr 3e-3, betas
            (0.9, 0.999), weight decay 1e-3) on alpha. (b) weight step on the train batch
            from the train stream's hidden state, alpha detached: backward, clip the grad
            norm to 0.25, SGD (lr 20, no momentum, weight decay 5e-7). Each stream's final
            hidden state is carried (detached) into its next step; both start at zeros.

Differences from the authors' training loop, none of them costing measurable time: the sequence
length is fixed at T (train_search.py halves it with probability 0.05 and scales the lr);
the temporal activation regularisation (beta 1e-3 there) is off unless --tar-beta is
given; the batches are random token ids drawn once with a fixed seed and reused every step,
as bench/darts_step_torch.py does with images.

Prints one JSON object (median step time, phases, median CPU seconds per step, peak RSS,
weight count: V*H + V + 4H^2 + 16H^2 with the tied weight counted once, checked against the
model's parameters); progress goes to stderr."""
import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

OPS = ("none", "tanh", "relu", "sigmoid", "identity")
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid,
               "identity": lambda h: h}
NODES = 8
EDGES = NODES * (NODES + 1) // 2  # node i has i predecessors (s0..s_{i-1}): 36 rows
INIT_RANGE = 0.04

W_LR, W_WD, W_CLIP = 20.0, 5e-7, 0.25
A_LR, A_BETAS, A_WD = 3e-3, (0.9, 0.999), 1e-3


def expected_weights(vocab, hidden):
    """Embedding (= decoder weight, tied), decoder bias, W0, and the 8 node matrices."""
    return vocab * hidden + vocab + (2 * hidden) * (2 * hidden) + NODES * hidden * 2 * hidden


def uniform_parameter(*shape):
    return nn.Parameter(torch.empty(*shape).uniform_(-INIT_RANGE, INIT_RANGE))


def gated(s, gate, value):
    """The cell's gated update: s + gate * (value - s)."""
    return s + gate * (value - s)


def sequence_mask(shape, drop, like):
    """A dropout mask of `shape` scaled by 1/keep; None (no mask) when drop is 0."""
    if drop <= 0:
        return None
    return torch.empty(shape, dtype=like.dtype).bernoulli_(1 - drop).div_(1 - drop)


def masked(x, mask):
    return x if mask is None else x * mask


class SearchCell(nn.Module):
    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden
        self.w0 = uniform_parameter(2 * hidden, 2 * hidden)
        self.node_weights = nn.ParameterList(uniform_parameter(hidden, 2 * hidden)
                                             for _ in range(NODES))
        # One BN without affine for s0 and every node, batch statistics, as the search cell.
        self.bn = nn.BatchNorm1d(hidden, affine=False)

    def forward(self, x, h_prev, probs, x_mask, h_mask):
        """One time step: x, h_prev [B, H] -> h_t [B, H]."""
        c0, h0 = (torch.cat([masked(x, x_mask), masked(h_prev, h_mask)], 1) @ self.w0).chunk(2, 1)
        states = [self.bn(gated(h_prev, torch.sigmoid(c0), torch.tanh(h0)))]
        row = 0
        for i, w in enumerate(self.node_weights):
            preds = torch.stack(states)  # [i+1, B, H]: every predecessor at once
            c, h = (masked(preds, h_mask) @ w).chunk(2, -1)  # one W_i for all of them
            gate = torch.sigmoid(c)
            p = probs[row:row + i + 1]  # [i+1, 5]: this node's edge rows
            node = 0
            for k, name in enumerate(OPS):
                if name == "none":
                    continue
                update = gated(preds, gate, ACTIVATIONS[name](h))
                node = node + (p[:, k].view(-1, 1, 1) * update).sum(0)
            states.append(self.bn(node))
            row += i + 1
        return torch.stack(states[1:]).mean(0)


class SearchLanguageModel(nn.Module):
    def __init__(self, vocab, hidden, dropouts):
        super().__init__()
        self.hidden = hidden
        self.dropouts = dropouts
        self.embedding = uniform_parameter(vocab, hidden)  # also the decoder's weight
        self.decoder_bias = nn.Parameter(torch.zeros(vocab))
        self.cell = SearchCell(hidden)
        # The architecture: one row of 5 op logits per edge; not in parameters().
        self.alpha = (1e-3 * torch.randn(EDGES, len(OPS))).requires_grad_()

    def forward(self, tokens, state, detach_alpha=False):
        """tokens [T, B] -> logits [T*B, V], the last hidden state [B, H]."""
        steps, batch = tokens.shape
        d = self.dropouts
        weight = self.embedding
        if d["embedding"] > 0:  # whole words dropped: rows of the embedding weight
            weight = weight * sequence_mask((weight.shape[0], 1), d["embedding"], weight)
        x = masked(F.embedding(tokens, weight), sequence_mask((1, batch, self.hidden),
                                                              d["input"], weight))
        x_mask = sequence_mask((batch, self.hidden), d["x"], weight)
        h_mask = sequence_mask((batch, self.hidden), d["hidden"], weight)
        alpha = self.alpha.detach() if detach_alpha else self.alpha
        probs = F.softmax(alpha, dim=-1)
        h = state
        outputs = []
        for t in range(steps):
            h = self.cell(x[t], h, probs, x_mask, h_mask)
            outputs.append(h)
        out = masked(torch.stack(outputs),
                     sequence_mask((1, batch, self.hidden), d["output"], weight))
        return F.linear(out.view(-1, self.hidden), self.embedding, self.decoder_bias), h, outputs


def count_weights(model):
    return sum(p.numel() for p in model.parameters())  # a shared tensor is listed once


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


@contextlib.contextmanager
def frozen(params):
    """requires_grad off for params inside the block, so backward forms no grads for them."""
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


class Stepper:
    def __init__(self, model, data, tar_beta):
        self.model = model
        self.weights = list(model.parameters())
        self.train_tokens, self.train_targets, self.val_tokens, self.val_targets = data
        batch = self.train_tokens.shape[1]
        self.train_state = torch.zeros(batch, model.hidden)
        self.val_state = torch.zeros(batch, model.hidden)
        self.tar_beta = tar_beta
        self.w_opt = torch.optim.SGD(self.weights, lr=W_LR, weight_decay=W_WD)
        self.a_opt = torch.optim.Adam([model.alpha], lr=A_LR, betas=A_BETAS, weight_decay=A_WD)
        self.last_loss = None

    def arch_step(self):
        self.a_opt.zero_grad(set_to_none=True)
        with frozen(self.weights):
            logits, state, _ = self.model(self.val_tokens, self.val_state)
            F.cross_entropy(logits, self.val_targets.view(-1)).backward()
        self.a_opt.step()
        self.val_state = state.detach()

    def weight_step(self):
        self.w_opt.zero_grad(set_to_none=True)
        logits, state, outputs = self.model(self.train_tokens, self.train_state,
                                            detach_alpha=True)
        loss = F.cross_entropy(logits, self.train_targets.view(-1))
        objective = loss
        if self.tar_beta > 0:  # temporal activation regularisation on the undropped h_t
            hs = torch.stack(outputs)
            objective = loss + self.tar_beta * (hs[1:] - hs[:-1]).pow(2).mean()
        objective.backward()
        torch.nn.utils.clip_grad_norm_(self.weights, W_CLIP)
        self.w_opt.step()
        self.train_state = state.detach()
        self.last_loss = loss.item()

    def step(self):
        """One search step; returns {phase: seconds}."""
        times = {}
        for name, fn in (("arch_step", self.arch_step), ("weight_step", self.weight_step)):
            start = time.perf_counter()
            fn()
            times[name] = time.perf_counter() - start
        return times


def summary(values):
    return {"median_s": round(statistics.median(values), 6), "min_s": round(min(values), 6)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden", type=int, default=300, help="H: embedding and hidden size")
    parser.add_argument("--vocab", type=int, default=10000, help="V: vocabulary size")
    parser.add_argument("--bptt", type=int, default=35,
                        help="T: tokens per sequence (time steps unrolled)")
    parser.add_argument("--batch", type=int, default=64, help="B: sequences per batch")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--steps", type=int, default=10, help="timed search steps")
    parser.add_argument("--warmup", type=int, default=2, help="untimed search steps first")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dropout-output", type=float, default=0.75)
    parser.add_argument("--dropout-hidden", type=float, default=0.25)
    parser.add_argument("--dropout-x", type=float, default=0.75)
    parser.add_argument("--dropout-input", type=float, default=0.2)
    parser.add_argument("--dropout-embedding", type=float, default=0.0)
    parser.add_argument("--tar-beta", type=float, default=0.0,
                        help="temporal activation regularisation on the weight step "
                             "(DARTS' train_search uses 1e-3; default off)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    load_start = list(os.getloadavg())
    baseline_rss = proc_status_bytes("VmRSS")

    dropouts = {"output": args.dropout_output, "hidden": args.dropout_hidden,
                "x": args.dropout_x, "input": args.dropout_input,
                "embedding": args.dropout_embedding}
    model = SearchLanguageModel(args.vocab, args.hidden, dropouts)
    model.train()
    weights = count_weights(model)
    expected = expected_weights(args.vocab, args.hidden)
    assert weights == expected, f"weight count {weights}, expected {expected}"

    def tokens():
        return torch.randint(0, args.vocab, (args.bptt, args.batch))

    data = (tokens(), tokens(), tokens(), tokens())  # train in/targets, val in/targets
    stepper = Stepper(model, data, args.tar_beta)

    rows = []
    for i in range(args.warmup + args.steps):
        cpu_start = time.process_time()
        times = stepper.step()
        cpu = time.process_time() - cpu_start  # the process's CPU time, all threads
        total = sum(times.values())
        kind = "warmup" if i < args.warmup else "step"
        print(f"darts {kind} {i}: {total:.3f} s  "
              + " ".join(f"{k}={v:.3f}" for k, v in times.items())
              + f"  loss={stepper.last_loss:.4f}", file=sys.stderr, flush=True)
        if i >= args.warmup:
            rows.append((total, times, cpu))

    totals = [t for t, _, _ in rows]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "engine": "pytorch " + torch.__version__,
        "threads": torch.get_num_threads(),
        "algo": "darts",
        "batch": args.batch,
        "bptt": args.bptt,
        "hidden": args.hidden,
        "vocab": args.vocab,
        "dropouts": dropouts,
        "tar_beta": args.tar_beta,
        "state": "carried per stream (train, val), zeros at the first step",
        "weights": weights,
        "arch_parameters": model.alpha.numel(),
        "steps": args.steps,
        "warmup": args.warmup,
        **summary(totals),
        "cpu_s": round(statistics.median(c for _, _, c in rows), 6),
        "phases": {name: summary([times[name] for _, times, _ in rows])
                   for name in ("arch_step", "weight_step")},
        "step_s": [round(t, 6) for t in totals],
        "final_train_loss": stepper.last_loss,
        "peak_rss_bytes": usage.ru_maxrss * 1024,  # Linux reports KiB
        "vm_hwm_bytes": proc_status_bytes("VmHWM"),
        "baseline_rss_bytes": baseline_rss,
        # 1/5/15-minute load averages when the run began and ended: the timings are only
        # as good as the machine was quiet.
        "load_average_start": load_start,
        "load_average_end": list(os.getloadavg()),
    }
    result["peak_rss_increase_bytes"] = result["peak_rss_bytes"] - baseline_rss
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
