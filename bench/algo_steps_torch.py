"""PyTorch references of cellgraph's other search algorithms, one search step each, on
bench/darts_torch.py's network; bench/darts_step_torch.py times them (--algo).

Written from the papers and the authors' published code, with docs/algorithms.md for the
choices cellgraph makes where the two differ; each step runs the passes cellgraph runs, in
its order and under its pass names, so bench/run_darts_bench can set them side by side:

  nasp       update_architecture_proximal: A_bar = prox_C1(A) one-hot (node projection:
             per node the 2 edges with the largest A at their best op other than none, the
             other edges zero; --nasp-projection edge: every edge at its arg-max); every
             candidate other than none runs forward on the val batch, the selected ones with
             autograd, the rest forward-only (no_grad: their output only feeds dL/dA_bar);
             weights frozen; Adam on G = dL/dA_bar, then A clipped to [0, 1], A_bar
             refreshed. --nasp-autograd-all runs every candidate with autograd, as the
             authors' code does (same gradient, more work).
             update_weights: SGD on the train batch through the selected ops only (weight 1).
  ista       recover_sparse_codes: per node j, z_j = argmin 1/2||A_j z - b_j||^2 + lambda||z||_1
             by FISTA (numpy, float64, warm-started, every node's problem in one
             vectorised iteration; lambda 1e-5, tolerance 1e-7, at most 1000 iterations),
             support S_j = the 2 largest |z|.
             update_weights: SGD through the supported ops only, with the coefficients
             c_S = A_S^T b - E_SS z_S (E = A^T A - I) held constant.
             update_codes: weights frozen, backward of L_val through the supported ops to b,
             Adam on b. A_j: m = 7 rows, entries uniform in [0, 1); b_j = A_j z0, z0 ~ 1e-3 N(0,1).
  sparsenas  sparsenas_architecture_gradient: DARTS' second-order gradient (as darts2) with the
             coefficients A itself (no softmax, no none): non-zero entries with autograd,
             zero entries forward-only in the passes at w', w+ and w-, left out of the
             unrolled step (their weights get no gradient and do not move).
             sparsenas_proximal_step: HAPG, z = A - eta g, x = prox_group(prox_l1(z)),
             v = x - A + u_{k-1} v, A = x + u_k v (eta 0.025, lambda 0.01, alpha 0.5).
             update_weights: SGD through the non-zero entries only.
             --density D < 1 puts A at a seeded pattern with that share of entries non-zero
             (|A| in [0.05, 0.3], either sign) before the architecture passes and before the
             weight step of every step, as bench/sparsenas_bench does; default 1: A's dense
             start, 1e-3 N(0, 1), which `cellgraph bench` times.
  rarts      two networks of the same shape, w on the train batch and y (own weights, BN
             buffers, SGD, independently initialised) on the val batch, one shared alpha.
             rarts_update_w: g = lambda grad_w L_t(w), clipped to 5, + beta (w - y); SGD.
             rarts_update_y: g = grad_y L_v(y), clipped, + beta (y - w_new); SGD.
             rarts_update_architecture: weights frozen, g_alpha = lambda grad L_t(w_new) +
             grad L_v(y_new) (two backward passes, one after the other); Adam.
             lambda 1, beta 5 (cellgraph's defaults).
  milenas    update_architecture_mixed_level: weights frozen, g_alpha = grad L_val +
             lambda grad L_train (two backward passes), lambda 1; Adam. update_weights as darts.

Selections (nasp and ista): each step records the candidates its weight step ran
(`selections`, in `cellgraph bench --json`'s weight_step_selections format); given
`--selection FILE` (a `cellgraph bench --json` output), the step computes its own selection as
above and then runs cellgraph's of the same step instead, so that both engines time the same
candidate ops (a step's selection moves from step to step, and a different draw of sep_convs
and pools changes a sparse step's time by tens of percent).

Optimizers everywhere are DARTS': SGD lr 0.025, momentum 0.9, wd 3e-4, grad norm clipped to 5
for weights; Adam lr 3e-4, betas (0.5, 0.999), wd 1e-3 for architecture variables. SGD moves
only weights that received a gradient (their grad is None otherwise), as cellgraph's sparse
weight steps do."""
import contextlib
import copy
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

import darts_torch

W_LR, W_MOMENTUM, W_WD, W_CLIP = 0.025, 0.9, 3e-4, 5.0
A_LR, A_BETAS, A_WD = 3e-4, (0.5, 0.999), 1e-3
HVP_R = 0.01
NONE = darts_torch.NONE
CANDIDATES = [k for k in range(len(darts_torch.OPS)) if k != NONE]  # the ops that compute


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


GROUPS = ("normal", "reduce")  # model.arch_parameters() order


def selection_entries(hot):
    """{group: [[edge row, op name], ...]} of the non-zero entries of per-group [E, ops]
    matrices (nasp's A_bar)."""
    return {g: [[e, darts_torch.OPS[k]] for e, k in (h != 0).nonzero().tolist()]
            for g, h in zip(GROUPS, hot)}


def forced_hot(entries, like):
    """The one-hot matrices of a selection (selection_entries' format)."""
    hot = [torch.zeros_like(a) for a in like]
    for g, h in zip(GROUPS, hot):
        for e, op in entries[g]:
            h[e, darts_torch.OPS.index(op)] = 1.0
    return hot


def node_rows():
    """Per intermediate node, the edge rows into it: [0, 1], [2, 3, 4], ..."""
    rows, start = [], 0
    for node in range(darts_torch.STEPS):
        rows.append(list(range(start, start + 2 + node)))
        start += 2 + node
    return rows


class Search:
    """What every step shares: the network, the data, the weights' SGD. A subclass lists its
    passes in PHASES and defines a method of each name; step() runs and times them."""

    PHASES = ()

    def __init__(self, model, data, forced=None):
        self.model = model
        # cellgraph's selections to run instead of ours (entry i + 1: step i's), or None.
        self.forced = forced
        self.steps_run = 0
        self.selections = []  # entry 0 before the first step, then one per step
        self.weights = list(model.parameters())
        self.x_train, self.y_train, self.x_val, self.y_val = data
        self.w_opt = torch.optim.SGD(self.weights, lr=W_LR, momentum=W_MOMENTUM,
                                     weight_decay=W_WD)
        self.last_loss = None

    def step(self):
        """Runs the passes; returns {pass: seconds}. self.candidates_run gets, per pass, the
        candidate ops it ran through run_terms (autograd, forward-only), summed over cells."""
        times = {}
        self.candidates_run = {}
        for name in self.PHASES:
            before = dict(darts_torch.TERMS_RUN)
            start = time.perf_counter()
            getattr(self, name)()
            times[name] = time.perf_counter() - start
            self.candidates_run[name] = [darts_torch.TERMS_RUN[k] - before[k]
                                         for k in ("autograd", "forward_only")]
        self.steps_run += 1
        self.record_selection()
        return times

    def record_selection(self):
        """Sparse steps append the candidates of their weight step to self.selections."""

    def forced_entries(self):
        """cellgraph's selection for the step now running (after its own was computed)."""
        if self.steps_run + 1 >= len(self.forced):
            raise SystemExit(f"--selection: the file has {len(self.forced) - 1} steps' "
                             f"selections, step {self.steps_run} needs one more")
        return self.forced[self.steps_run + 1]

    def sgd_step(self, optimizer, params, loss_fn):
        """zero grads, loss, backward, clip, SGD step; returns the loss value."""
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, W_CLIP)
        optimizer.step()
        return loss.item()

    def terms_loss(self, x, y, plans):
        return F.cross_entropy(self.model.forward_terms(x, *plans), y)

    def dense_loss(self, model, x, y, detach_alpha=False):
        return F.cross_entropy(model(x, detach_alpha), y)


class Nasp(Search):
    PHASES = ("update_architecture_proximal", "update_weights")

    def __init__(self, model, data, projection="node", autograd_all=False, forced=None):
        super().__init__(model, data, forced)
        self.projection = projection
        self.autograd_all = autograd_all
        # A starts as DARTS' alpha draw projected onto the box [0, 1].
        self.a = [a.detach().clamp(0.0, 1.0).requires_grad_() for a in model.arch_parameters()]
        self.a_opt = torch.optim.Adam(self.a, lr=A_LR, betas=A_BETAS, weight_decay=A_WD)
        self.hot = [self.project(a) for a in self.a]
        if forced is not None:
            self.hot = forced_hot(forced[0], self.a)
        self.record_selection()

    def record_selection(self):
        self.selections.append(selection_entries(self.hot))

    def project(self, a):
        """prox_C1: the one-hot selection of A (see the module doc)."""
        a = a.detach()
        hot = torch.zeros_like(a)
        if self.projection == "edge":
            hot[torch.arange(a.shape[0]), a.argmax(dim=1)] = 1.0
            return hot
        for rows in node_rows():
            best = []  # (strength, edge row, op) per edge, ops other than none
            for r in rows:
                k = max(CANDIDATES, key=lambda c: (a[r, c].item(), -c))
                best.append((a[r, k].item(), r, k))
            kept = sorted(best, key=lambda t: (-t[0], t[1]))[:2]
            for _, r, k in kept:
                hot[r, k] = 1.0
        return hot

    def arch_plan(self, hot_var, hot):
        return [[(k, hot_var[e, k], hot[e, k].item() == 0.0 and not self.autograd_all)
                 for k in CANDIDATES] for e in range(hot.shape[0])]

    @staticmethod
    def weight_plan(hot):
        return [[(k, None, False) for k in range(hot.shape[1]) if hot[e, k].item() != 0.0]
                for e in range(hot.shape[0])]

    def update_architecture_proximal(self):
        hot_vars = [h.clone().requires_grad_() for h in self.hot]
        plans = [self.arch_plan(v, h) for v, h in zip(hot_vars, self.hot)]
        with frozen(self.weights):
            grads = torch.autograd.grad(self.terms_loss(self.x_val, self.y_val, plans), hot_vars)
        self.a_opt.zero_grad(set_to_none=True)
        for a, g in zip(self.a, grads):
            a.grad = g
        self.a_opt.step()
        with torch.no_grad():
            for a in self.a:
                a.clamp_(0.0, 1.0)
        self.hot = [self.project(a) for a in self.a]
        if self.forced is not None:
            self.hot = forced_hot(self.forced_entries(), self.a)

    def update_weights(self):
        plans = [self.weight_plan(h) for h in self.hot]
        self.last_loss = self.sgd_step(
            self.w_opt, self.weights, lambda: self.terms_loss(self.x_train, self.y_train, plans))


def fista(a, b, z, lam, lipschitz, tolerance, max_iterations):
    """argmin_z 1/2||a z - b||^2 + lam ||z||_1 for a batch of problems at once (a [P, m, n],
    b [P, m], z [P, n] the warm start, lipschitz [P]; problems of fewer columns padded with
    zero columns, whose entries then stay zero): Beck & Teboulle's FISTA, step 1/L, each
    problem stopping once an iteration moves its z by at most tolerance (max-norm). One
    vectorised iteration for every node of the network, so the interpreter's cost per
    iteration is paid once, not once per node."""
    ata = np.einsum("pmi,pmj->pij", a, a)
    atb = np.einsum("pmi,pm->pi", a, b)
    step = (1.0 / lipschitz)[:, None]
    y, t = z.copy(), np.ones(len(a))
    running = np.ones(len(a), dtype=bool)
    for _ in range(max_iterations):
        u = y - step * (np.einsum("pij,pj->pi", ata, y) - atb)
        z_new = np.sign(u) * np.maximum(np.abs(u) - lam * step, 0.0)
        t_new = (1.0 + np.sqrt(1.0 + 4.0 * t * t)) / 2.0
        y_new = z_new + ((t - 1.0) / t_new)[:, None] * (z_new - z)
        moved = np.max(np.abs(z_new - z), axis=1)
        z = np.where(running[:, None], z_new, z)
        y = np.where(running[:, None], y_new, y)
        t = np.where(running, t_new, t)
        running &= moved > tolerance
        if not running.any():
            break
    return z


class IstaNode:
    """One node's sparse code: dictionary A (m x n, n = edges x candidates), code b."""

    def __init__(self, rows, m, rng):
        self.rows = rows
        n = len(rows) * len(CANDIDATES)
        self.a = rng.uniform(0.0, 1.0, size=(m, n))
        self.lipschitz = float(np.linalg.eigvalsh(self.a.T @ self.a)[-1])
        self.z = 1e-3 * rng.standard_normal(n)
        self.b = torch.tensor(self.a @ self.z, dtype=torch.float32, requires_grad=True)
        self.e = self.a.T @ self.a - np.eye(n)
        self.support = None

    def set_code(self, z, keep, support=None):
        """z from the LASSO; the support is its `keep` largest |z| (ties: lower index), or
        `support` (dictionary indices) where given."""
        self.z = z
        s = sorted(range(len(z)), key=lambda i: (-abs(z[i]), i))[:keep]
        if support is not None:
            if len(support) != keep:
                raise SystemExit(f"--selection: a node of edges {self.rows} has {len(support)} "
                                 f"selected candidates, ISTA-NAS keeps {keep}")
            s = support
        self.support = s
        self.a_s = torch.tensor(self.a[:, s], dtype=torch.float32)
        self.ez_s = torch.tensor(self.e[np.ix_(s, s)] @ z[s], dtype=torch.float32)

    def coefficients(self, b):
        """c_S = A_S^T b - E_SS z_S."""
        return self.a_s.T @ b - self.ez_s

    def entries(self):
        """The support as [edge row, op name] pairs."""
        n = len(CANDIDATES)
        return [[self.rows[i // n], darts_torch.OPS[CANDIDATES[i % n]]]
                for i in sorted(self.support)]

    def support_of(self, entries):
        """Dictionary indices of the entries that fall on this node's edges."""
        n = len(CANDIDATES)
        return sorted((e - self.rows[0]) * n + CANDIDATES.index(darts_torch.OPS.index(op))
                      for e, op in entries if e in self.rows)

    def add_terms(self, plan, b):
        c = self.coefficients(b)
        for j, i in enumerate(self.support):
            edge = self.rows[i // len(CANDIDATES)]
            plan[edge].append((CANDIDATES[i % len(CANDIDATES)], c[j], False))


class Ista(Search):
    PHASES = ("recover_sparse_codes", "update_weights", "update_codes")
    KEEP, M = 2, 7

    def __init__(self, model, data, seed, forced=None):
        super().__init__(model, data, forced)
        rng = np.random.default_rng(seed)
        self.nodes = [[IstaNode(rows, self.M, rng) for rows in node_rows()] for _ in range(2)]
        self.b_opt = torch.optim.Adam([n.b for cell in self.nodes for n in cell], lr=A_LR,
                                      betas=A_BETAS, weight_decay=A_WD)
        self.record_selection()

    def plans(self, detach):
        out = []
        for cell in self.nodes:
            plan = [[] for _ in range(darts_torch.EDGES)]
            for node in cell:
                node.add_terms(plan, node.b.detach() if detach else node.b)
            out.append(plan)
        return out

    def recover_sparse_codes(self):
        nodes = [node for cell in self.nodes for node in cell]
        p, m, n = len(nodes), self.M, max(len(node.z) for node in nodes)
        a, z = np.zeros((p, m, n)), np.zeros((p, n))
        for i, node in enumerate(nodes):
            a[i, :, :len(node.z)] = node.a
            z[i, :len(node.z)] = node.z
        b = np.stack([node.b.detach().double().numpy() for node in nodes])
        lipschitz = np.array([node.lipschitz for node in nodes])
        z = fista(a, b, z, 1e-5, lipschitz, 1e-7, 1000)
        forced = self.forced_entries() if self.forced is not None else None
        for i, node in enumerate(nodes):
            group = GROUPS[i // len(self.nodes[0])]
            support = node.support_of(forced[group]) if forced is not None else None
            node.set_code(z[i, :len(node.z)], self.KEEP, support)

    def record_selection(self):
        if self.nodes[0][0].support is None:  # before the first step: no support yet
            self.selections.append(None)
            return
        self.selections.append({
            g: sorted((e for node in cell for e in node.entries()),
                      key=lambda e: (e[0], darts_torch.OPS.index(e[1])))
            for g, cell in zip(GROUPS, self.nodes)})

    def update_weights(self):
        plans = self.plans(detach=True)
        self.last_loss = self.sgd_step(
            self.w_opt, self.weights, lambda: self.terms_loss(self.x_train, self.y_train, plans))

    def update_codes(self):
        self.b_opt.zero_grad(set_to_none=True)
        with frozen(self.weights):
            self.terms_loss(self.x_val, self.y_val, self.plans(detach=False)).backward()
        self.b_opt.step()


class SparseNas(Search):
    PHASES = ("sparsenas_architecture_gradient", "sparsenas_proximal_step", "update_weights")
    LR, LAMBDA, ALPHA = 0.025, 0.01, 0.5

    def __init__(self, model, data, density, seed):
        super().__init__(model, data)
        shape = (darts_torch.EDGES, len(CANDIDATES))
        if density >= 1.0:
            self.pattern = None
            self.a = [1e-3 * torch.randn(shape) for _ in range(2)]
        else:
            self.pattern = [self.sparse_pattern(shape, density, seed + i) for i in range(2)]
            self.a = [p.clone() for p in self.pattern]
        self.x = [a.clone() for a in self.a]
        self.v = [torch.zeros(shape) for _ in range(2)]
        self.k = 0
        self.grad = None
        cols = len(CANDIDATES)
        self.groups = [[r * cols + c for r in rows for c in range(cols)] for rows in node_rows()]

    @staticmethod
    def sparse_pattern(shape, density, seed):
        g = torch.Generator().manual_seed(seed)
        n = shape[0] * shape[1]
        keep = int(n * density + 0.5)
        a = torch.zeros(n)
        chosen = torch.randperm(n, generator=g)[:keep]
        magnitude = 0.05 + 0.25 * torch.rand(keep, generator=g)
        sign = torch.where(torch.rand(keep, generator=g) < 0.5, -1.0, 1.0)
        a[chosen] = sign * magnitude
        return a.reshape(shape)

    def restore_pattern(self):
        if self.pattern is not None:
            self.a = [p.clone() for p in self.pattern]
            self.x = [p.clone() for p in self.pattern]
            self.v = [torch.zeros_like(p) for p in self.pattern]

    def plan(self, a_var, a, forward_only_zeros):
        """Non-zero entries with autograd; zero ones forward-only, or left out."""
        plan = []
        for e in range(a.shape[0]):
            terms = []
            for c, k in enumerate(CANDIDATES):
                zero = a[e, c].item() == 0.0
                if zero and not forward_only_zeros:
                    continue
                terms.append((k, a_var[e, c], zero))
            plan.append(terms)
        return plan

    def loss_at(self, x, y, a_vars, forward_only_zeros):
        plans = [self.plan(v, a, forward_only_zeros) for v, a in zip(a_vars, self.a)]
        return self.terms_loss(x, y, plans)

    def sparsenas_architecture_gradient(self):
        """DARTS' second-order gradient at A (see darts_step_torch.py's darts2)."""
        self.restore_pattern()
        xi = self.w_opt.param_groups[0]["lr"]
        loss = self.loss_at(self.x_train, self.y_train, self.a, forward_only_zeros=False)
        grads = torch.autograd.grad(loss, self.weights, allow_unused=True)
        backup = [w.detach().clone() for w in self.weights]
        with torch.no_grad():  # w' = w - xi (momentum buf + g + wd w), trained weights only
            for w, g in zip(self.weights, grads):
                if g is None:
                    continue
                d = g + W_WD * w
                buf = self.w_opt.state.get(w, {}).get("momentum_buffer")
                if buf is not None:
                    d.add_(buf, alpha=W_MOMENTUM)
                w.sub_(d, alpha=xi)
        a_vars = [a.clone().requires_grad_() for a in self.a]
        grads = torch.autograd.grad(
            self.loss_at(self.x_val, self.y_val, a_vars, forward_only_zeros=True),
            a_vars + self.weights, allow_unused=True)
        d_a, d_w = grads[:2], grads[2:]
        norm = torch.linalg.vector_norm(
            torch.stack([torch.linalg.vector_norm(g) for g in d_w if g is not None]))
        r = HVP_R / norm.item()
        sides = []
        for sign in (1.0, -1.0):
            with torch.no_grad():
                for w, w0, g in zip(self.weights, backup, d_w):
                    w.copy_(w0)
                    if g is not None:
                        w.add_(g, alpha=sign * r)
            a_vars = [a.clone().requires_grad_() for a in self.a]
            with frozen(self.weights):
                sides.append(torch.autograd.grad(
                    self.loss_at(self.x_train, self.y_train, a_vars, forward_only_zeros=True),
                    a_vars))
        with torch.no_grad():
            for w, w0 in zip(self.weights, backup):
                w.copy_(w0)
        self.grad = [da - xi * (p - n) / (2 * r) for da, p, n in zip(d_a, *sides)]

    def sparsenas_proximal_step(self):
        """One HAPG iteration on every group's entries (float64 on the host)."""
        self.k += 1
        u_prev, u = max(self.k - 2, 0) / (self.k + 1), (self.k - 1) / (self.k + 2)
        l1 = self.LR * self.LAMBDA * self.ALPHA
        group_t = self.LR * self.LAMBDA * (1.0 - self.ALPHA)
        for i in range(2):
            a = self.a[i].double().flatten()
            z = a - self.LR * self.grad[i].double().flatten()
            x = torch.sign(z) * torch.clamp(z.abs() - l1, min=0.0)
            for entries in self.groups:
                idx = torch.tensor(entries)
                norm = torch.linalg.vector_norm(x[idx]).item()
                scale = max(0.0, 1.0 - (len(entries) ** 0.5) * group_t / norm) if norm else 0.0
                x[idx] *= scale
            v = x - a + u_prev * self.v[i].double().flatten()
            shape = self.a[i].shape
            self.a[i] = (x + u * v).float().reshape(shape)
            self.x[i] = x.float().reshape(shape)
            self.v[i] = v.float().reshape(shape)

    def update_weights(self):
        self.restore_pattern()
        self.last_loss = self.sgd_step(
            self.w_opt, self.weights,
            lambda: self.loss_at(self.x_train, self.y_train, self.a, forward_only_zeros=False))


class Rarts(Search):
    PHASES = ("rarts_update_w", "rarts_update_y", "rarts_update_architecture")
    LAMBDA, BETA = 1.0, 5.0

    def __init__(self, model, data):
        super().__init__(model, data)
        # y: the same network with its own weights, initialised independently, sharing alpha.
        self.model_y = copy.deepcopy(model)
        for m in self.model_y.modules():
            if m is not self.model_y and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        self.model_y.alpha_normal = model.alpha_normal
        self.model_y.alpha_reduce = model.alpha_reduce
        self.y_weights = list(self.model_y.parameters())
        self.y_opt = torch.optim.SGD(self.y_weights, lr=W_LR, momentum=W_MOMENTUM,
                                     weight_decay=W_WD)
        self.alphas = model.arch_parameters()
        self.a_opt = torch.optim.Adam(self.alphas, lr=A_LR, betas=A_BETAS, weight_decay=A_WD)

    def coupled_step(self, optimizer, params, others, loss_fn):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, W_CLIP)
        with torch.no_grad():
            for p, q in zip(params, others):
                p.grad.add_(p - q, alpha=self.BETA)
        optimizer.step()
        return loss.item()

    def rarts_update_w(self):
        self.last_loss = self.coupled_step(
            self.w_opt, self.weights, self.y_weights,
            lambda: self.LAMBDA * self.dense_loss(self.model, self.x_train, self.y_train, True))

    def rarts_update_y(self):
        self.coupled_step(self.y_opt, self.y_weights, self.weights,
                          lambda: self.dense_loss(self.model_y, self.x_val, self.y_val, True))

    def rarts_update_architecture(self):
        self.a_opt.zero_grad(set_to_none=True)
        with frozen(self.weights + self.y_weights):
            (self.LAMBDA * self.dense_loss(self.model, self.x_train, self.y_train)).backward()
            self.dense_loss(self.model_y, self.x_val, self.y_val).backward()
        self.a_opt.step()


class Milenas(Search):
    PHASES = ("update_architecture_mixed_level", "update_weights")
    LAMBDA = 1.0

    def __init__(self, model, data):
        super().__init__(model, data)
        self.alphas = model.arch_parameters()
        self.a_opt = torch.optim.Adam(self.alphas, lr=A_LR, betas=A_BETAS, weight_decay=A_WD)

    def update_architecture_mixed_level(self):
        self.a_opt.zero_grad(set_to_none=True)
        with frozen(self.weights):
            self.dense_loss(self.model, self.x_val, self.y_val).backward()
            (self.LAMBDA * self.dense_loss(self.model, self.x_train, self.y_train)).backward()
        self.a_opt.step()

    def update_weights(self):
        self.last_loss = self.sgd_step(
            self.w_opt, self.weights,
            lambda: self.dense_loss(self.model, self.x_train, self.y_train, True))


def make(algo, model, data, args):
    """The stepper of one of the algorithms above, from darts_step_torch.py's arguments."""
    # darts_step_torch.py refuses --selection for the algos that have none to follow.
    forced = read_selections(args.selection, algo) if args.selection else None
    if algo == "nasp":
        return Nasp(model, data, args.nasp_projection, args.nasp_autograd_all, forced)
    if algo == "ista":
        return Ista(model, data, args.seed, forced)
    if algo == "sparsenas":
        return SparseNas(model, data, args.density, args.seed)
    if algo == "rarts":
        return Rarts(model, data)
    if algo == "milenas":
        return Milenas(model, data)
    raise ValueError(algo)


def read_selections(path, algo):
    """The weight_step_selections of a `cellgraph bench --json` output of the same algo."""
    try:
        with open(path) as f:
            run = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"--selection {path}: {e}")
    if run.get("algo") != algo:
        raise SystemExit(f"--selection {path}: a run of {run.get('algo')!r}, not {algo!r}")
    if "weight_step_selections" not in run:
        raise SystemExit(f"--selection {path}: no weight_step_selections (a dense run?)")
    return run["weight_step_selections"]


ALGOS = {"nasp": Nasp.PHASES, "ista": Ista.PHASES, "sparsenas": SparseNas.PHASES,
         "rarts": Rarts.PHASES, "milenas": Milenas.PHASES}
