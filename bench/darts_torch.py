"""The DARTS CNN search network (Liu et al., ICLR 2019) in PyTorch: the reference that
cellgraph's examples/spaces/darts_cnn.json is benchmarked against (bench/darts_step_torch.py).

Built from the DARTS paper's description of the search network, so that its weight count equals
cellgraph's: 1,930,618 for C=16, 8 cells, 10 classes, 3 input channels and 1,929,754 for
one input channel (the input's height and width do not change the count).

  ops       none, max_pool_3x3, avg_pool_3x3, skip_connect, sep_conv_3x3, sep_conv_5x5,
            dil_conv_3x3, dil_conv_5x5; every BN is without affine parameters except the
            stem's; pooling is followed by BN; avg pool excludes padding; none is zero.
  edge      MixedOp: sum_k softmax(alpha)_k * op_k(x).
  cell      inputs preprocessed by ReLU-conv1x1-BN (factorized reduce for c_{k-2} after a
            reduction cell); 4 nodes summing mixed edges from all earlier states (14
            edges, in the order node 0 <- s0, s1; node 1 <- s0, s1, n0; ...); in a
            reduction cell the edges from the two inputs have stride 2; output = concat.
  network   stem conv3x3 to 3C + affine BN; L cells, channels doubled and reduction at
            floor(L/3) and floor(2L/3); global average pool; linear. alpha_normal and
            alpha_reduce, each [14, 8], are shared by all normal / all reduction cells.

The sparse algorithms (bench/algo_steps_torch.py) run it through forward_terms: per edge
only the candidates a plan names, each with autograd or forward-only (run_terms).

Run as a script it prints the weight counts and exits non-zero if they differ from the
brief's."""
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
       "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
NONE = OPS.index("none")
STEPS = 4  # intermediate nodes per cell
EDGES = sum(2 + i for i in range(STEPS))  # 14
# Weight counts from the brief for C=16, 8 cells, 10 classes, by input channels.
EXPECTED_WEIGHTS = {3: 1_930_618, 1: 1_929_754}


def _bn(channels, affine=False):
    return nn.BatchNorm2d(channels, affine=affine)


def _depthwise(channels, kernel, stride, padding, dilation=1):
    return nn.Conv2d(channels, channels, kernel, stride, padding, dilation,
                     groups=channels, bias=False)


def _pointwise(c_in, c_out):
    return nn.Conv2d(c_in, c_out, 1, bias=False)


class Zero(nn.Module):
    """The `none` op: zeros of the output's shape (every stride-th pixel at stride 2)."""

    def __init__(self, stride):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, ::self.stride, ::self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs to c_out/2 channels, the second on the input shifted by
    one pixel in H and W, concatenated along channels, then BN. Halves H and W (even)."""

    def __init__(self, c_in, c_out):
        super().__init__()
        assert c_out % 2 == 0, "factorized reduce needs an even channel count"
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = _bn(c_out)

    def forward(self, x):
        x = F.relu(x)
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(x[:, :, 1:, 1:])], dim=1))


def relu_conv_bn(c_in, c_out):
    """Cell-input preprocessing: ReLU, conv 1x1, BN."""
    return nn.Sequential(nn.ReLU(), _pointwise(c_in, c_out), _bn(c_out))


def sep_conv(channels, kernel, stride):
    """Two blocks of ReLU, depthwise kxk, pointwise 1x1, BN; the first carries the stride."""
    pad = kernel // 2
    return nn.Sequential(
        nn.ReLU(), _depthwise(channels, kernel, stride, pad), _pointwise(channels, channels),
        _bn(channels),
        nn.ReLU(), _depthwise(channels, kernel, 1, pad), _pointwise(channels, channels),
        _bn(channels))


def dil_conv(channels, kernel, stride):
    """ReLU, depthwise kxk with dilation 2, pointwise 1x1, BN."""
    return nn.Sequential(
        nn.ReLU(), _depthwise(channels, kernel, stride, kernel - 1, dilation=2),
        _pointwise(channels, channels), _bn(channels))


def make_op(name, channels, stride):
    if name == "none":
        return Zero(stride)
    if name == "max_pool_3x3":
        return nn.Sequential(nn.MaxPool2d(3, stride, 1), _bn(channels))
    if name == "avg_pool_3x3":
        return nn.Sequential(nn.AvgPool2d(3, stride, 1, count_include_pad=False), _bn(channels))
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)
    if name.startswith("sep_conv_"):
        return sep_conv(channels, int(name[-1]), stride)
    if name.startswith("dil_conv_"):
        return dil_conv(channels, int(name[-1]), stride)
    raise ValueError(f"unknown op {name}")


class MixedOp(nn.Module):
    """One edge: all candidate ops, in OPS order."""

    def __init__(self, channels, stride):
        super().__init__()
        self.ops = nn.ModuleList(make_op(name, channels, stride) for name in OPS)

    def forward(self, x, weights, materialize_none=False):
        """sum_k weights[k] * op_k(x). The `none` term is exactly zero, so it is skipped
        unless materialize_none (which computes x*0 like the original DARTS code)."""
        out = None
        for k, op in enumerate(self.ops):
            if k == NONE and not materialize_none:
                continue
            term = weights[k] * op(x)
            out = term if out is None else out + term
        return out


class Cell(nn.Module):
    def __init__(self, c_prev_prev, c_prev, channels, reduction, reduction_prev):
        super().__init__()
        self.reduction = reduction
        self.pre0 = (FactorizedReduce(c_prev_prev, channels) if reduction_prev
                     else relu_conv_bn(c_prev_prev, channels))
        self.pre1 = relu_conv_bn(c_prev, channels)
        self.edges = nn.ModuleList()
        for node in range(STEPS):
            for src in range(2 + node):
                stride = 2 if reduction and src < 2 else 1
                self.edges.append(MixedOp(channels, stride))

    def _run(self, s0, s1, edge_fn):
        states = [self.pre0(s0), self.pre1(s1)]
        edge = 0
        for _ in range(STEPS):
            total = None
            for h in states:
                # A node that computed nothing is zero, and so is every op of it (each op
                # maps zero to zero: no bias, BN without affine): its edges are skipped.
                y = None if h is None else edge_fn(edge, h)
                if y is not None:
                    total = y if total is None else total + y
                edge += 1
            states.append(total)
        nodes = states[2:]
        computed = [n for n in nodes if n is not None]
        if not computed:
            raise ValueError("every node of a cell computes nothing (all its plans are empty)")
        return torch.cat([torch.zeros_like(computed[0]) if n is None else n for n in nodes],
                         dim=1)

    def forward(self, s0, s1, weights, materialize_none=False):
        """weights: [14, 8] softmaxed architecture weights of this cell type."""
        return self._run(s0, s1, lambda e, h: self.edges[e](h, weights[e], materialize_none))

    def forward_single(self, s0, s1, choice):
        """choice: one op index per edge; each edge runs only that op (weight 1)."""
        return self._run(s0, s1, lambda e, h: self.edges[e].ops[choice[e]](h))

    def forward_terms(self, s0, s1, plan):
        """plan: per edge, the terms it computes (see run_terms); an edge with none adds
        nothing to its node."""
        return self._run(s0, s1, lambda e, h: run_terms(self.edges[e], h, plan[e]))


class SearchNetwork(nn.Module):
    """The DARTS search network. parameters() are the network weights only; the
    architecture parameters are arch_parameters() (alpha_normal, alpha_reduce)."""

    def __init__(self, channels=16, layers=8, classes=10, in_channels=3, stem_multiplier=3):
        super().__init__()
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False),
                                  _bn(c_stem, affine=True))
        c_prev_prev, c_prev, c = c_stem, c_stem, channels
        reductions = {layers // 3, 2 * layers // 3}
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            self.cells.append(Cell(c_prev_prev, c_prev, c, reduction, reduction_prev))
            reduction_prev = reduction
            c_prev_prev, c_prev = c_prev, STEPS * c
        self.classifier = nn.Linear(c_prev, classes)
        # Plain tensors, not registered: parameters() stays the weights alone.
        self.alpha_normal = (1e-3 * torch.randn(EDGES, len(OPS))).requires_grad_()
        self.alpha_reduce = (1e-3 * torch.randn(EDGES, len(OPS))).requires_grad_()

    def arch_parameters(self):
        return [self.alpha_normal, self.alpha_reduce]

    def _head(self, s1):
        return self.classifier(F.adaptive_avg_pool2d(s1, 1).flatten(1))

    def forward(self, x, detach_alpha=False, materialize_none=False):
        a_normal, a_reduce = self.alpha_normal, self.alpha_reduce
        if detach_alpha:
            a_normal, a_reduce = a_normal.detach(), a_reduce.detach()
        w_normal, w_reduce = F.softmax(a_normal, dim=-1), F.softmax(a_reduce, dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            w = w_reduce if cell.reduction else w_normal
            s0, s1 = s1, cell(s0, s1, w, materialize_none)
        return self._head(s1)

    def forward_terms(self, x, plan_normal, plan_reduce):
        """Each edge computes only its plan's terms (run_terms): the sparse algorithms."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            plan = plan_reduce if cell.reduction else plan_normal
            s0, s1 = s1, cell.forward_terms(s0, s1, plan)
        return self._head(s1)

    def forward_single(self, x, choice_normal, choice_reduce):
        """NASP-style forward: each edge runs only its chosen op."""
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            choice = choice_reduce if cell.reduction else choice_normal
            s0, s1 = s1, cell.forward_single(s0, s1, choice)
        return self._head(s1)


# Candidate ops run_terms has run, by kind: the sparse steps report them per pass.
TERMS_RUN = {"autograd": 0, "forward_only": 0}


def run_terms(edge, x, terms):
    """The sparse algorithms' edge: sum over terms (k, coefficient, forward_only) of
    coefficient * op_k(x). coefficient None means weight 1 (no multiplication). A
    forward-only term runs op_k under no_grad: its output carries no autograd history, so
    backward reaches neither op_k's weights nor x through it, yet the coefficient still gets
    its gradient <dL/dy, op_k(x)> (what NASP and SparseNAS need for their unselected / zero
    entries). Returns None for no terms."""
    out = None
    for k, coefficient, forward_only in terms:
        TERMS_RUN["forward_only" if forward_only else "autograd"] += 1
        if forward_only:
            with torch.no_grad():
                y = edge.ops[k](x)
        else:
            y = edge.ops[k](x)
        term = y if coefficient is None else coefficient * y
        out = term if out is None else out + term
    return out


def best_ops(alpha):
    """Per edge, the index of the largest weight excluding `none` (ties: lower index)."""
    masked = alpha.detach().clone()
    masked[:, NONE] = float("-inf")
    return [int(k) for k in masked.argmax(dim=-1)]


def count_weights(model):
    return sum(p.numel() for p in model.parameters())


def check_weights(out=sys.stdout):
    """Prints the weight counts for 3 and 1 input channels; True when both match the brief."""
    ok = True
    for in_channels, expected in EXPECTED_WEIGHTS.items():
        got = count_weights(SearchNetwork(16, 8, 10, in_channels))
        match = got == expected
        ok &= match
        print(f"C=16 layers=8 classes=10 in_channels={in_channels}: {got:,} weights "
              f"(brief: {expected:,}) {'ok' if match else 'MISMATCH'}", file=out)
    print(f"architecture parameters: 2 x [{EDGES}, {len(OPS)}] = {2 * EDGES * len(OPS)}",
          file=out)
    return ok


if __name__ == "__main__":
    sys.exit(0 if check_weights() else 1)
