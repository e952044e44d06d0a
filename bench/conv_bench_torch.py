"""Reference run for bench/conv_bench.cpp: the same cases through PyTorch on the same
thread count, forward + backward (input and weight gradients) or, with --forward-only, the
forward alone; median of repeats.
Prints JSON in the same layout as the C++ benchmark."""
import argparse
import json
import os
import time

import torch
import torch.nn.functional as F

# name: (batch, channels, out_channels, size, kernel, stride, dilation, depthwise, separable)
CASES = {
    "conv3x3_c16_s32": (64, 16, 16, 32, 3, 1, 1, False, False),
    "conv1x1_c64_s8": (64, 64, 64, 8, 1, 1, 1, False, False),
    "conv1x1_c16_s32": (64, 16, 16, 32, 1, 1, 1, False, False),
    "dwconv3x3_c16_s32": (64, 16, 16, 32, 3, 1, 1, True, False),
    "dwconv5x5_c32_s16": (64, 32, 32, 16, 5, 1, 1, True, False),
    "dilconv3x3_c16_s32": (64, 16, 16, 32, 3, 1, 2, True, False),
    "sepblock3x3_c16_s32": (64, 16, 16, 32, 3, 1, 1, True, True),
    "sepblock5x5_c32_s16_stride2": (64, 32, 32, 16, 5, 2, 1, True, True),
}


def build(case, memory_format):
    n, c, o, s, k, stride, dil, depthwise, separable = case
    x = torch.randn(n, c, s, s).to(memory_format=memory_format).requires_grad_()
    groups = c if depthwise else 1
    w = torch.randn(o, c // groups, k, k).to(memory_format=memory_format).requires_grad_()
    pad = dil * (k - 1) // 2
    if not separable:
        return [x, w], lambda: F.conv2d(x, w, None, stride, pad, dil, groups)
    pw = torch.randn(o, o, 1, 1).to(memory_format=memory_format).requires_grad_()
    mean, var = torch.zeros(o), torch.ones(o)

    def forward():
        h = F.conv2d(F.relu(x), w, None, stride, pad, dil, groups)
        h = F.conv2d(h, pw)
        return F.batch_norm(h, mean, var, None, None, training=True)

    return [x, w, pw], forward


def time_once(leaves, forward, forward_only):
    for t in leaves:
        t.grad = None
    start = time.perf_counter()
    y = forward()
    if not forward_only:
        y.backward(torch.ones_like(y))
    return (time.perf_counter() - start) * 1000.0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    # channels_last by default: PyTorch's NCHW depthwise and dilated backward on CPU is far
    # slower (see bench/README.md), and the reference should be PyTorch at its best.
    parser.add_argument("--memory-format", choices=["channels_last", "contiguous"],
                        default="channels_last")
    # The forward alone (leaves still require gradients, as in a training step): NASP's
    # architecture step runs every candidate forward and few backward.
    parser.add_argument("--forward-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cases = []
    for name, case in CASES.items():
        fmt = (torch.channels_last if args.memory_format == "channels_last"
               else torch.contiguous_format)
        leaves, forward = build(case, fmt)
        for _ in range(3):
            time_once(leaves, forward, args.forward_only)
        ms = sorted(time_once(leaves, forward, args.forward_only) for _ in range(args.repeats))
        cases.append({"name": name, "median_ms": round(ms[len(ms) // 2], 4),
                      "min_ms": round(ms[0], 4)})
    print(json.dumps({"engine": "pytorch " + torch.__version__ + " " + args.memory_format,
                      "threads": torch.get_num_threads(),
                      "repeats": args.repeats,
                      "pass": "forward" if args.forward_only else "forward+backward",
                      "cases": cases}, indent=1))


if __name__ == "__main__":
    main()
