"""bench/run_darts_bench's report: for each algo, cellgraph's and PyTorch's step (and pass)
times and peak RSS side by side, then one summary table against issue 17's targets.
Exits 1 when an algo's weight count differs between the engines (they did not run the
same network), or when a sparse algo's steps ran different candidate ops in the two engines
(each engine's weight_step_selections), after printing everything else.

  compare_darts.py RESULTS_DIR ALGO...   reads darts_ALGO_{pytorch,cellgraph}_roundR.json
                                         (+ .rss) for R = 1, 2, ... while PyTorch's exists

With several rounds (run_darts_bench's BENCH_ROUNDS) each round is printed, and the summary
takes per algo the median of the rounds' step times, of their time ratios (each round's
engines ran back to back) and of their RSS ratios.

Writes RESULTS_DIR/darts_compare.json with every run, the summary and the host (CPU model,
family and model numbers, logical CPUs, cache sizes, AVX-512 or not): the same build's
ratios differ by CPU (bench/README.md, "A Zen 5 host"), so a figure names its host."""
import json
import os
import statistics
import sys

MIB = 1 << 20
# Issue 17: per algorithm, cellgraph / PyTorch at the same thread count.
TIME_TARGET, RSS_TARGET = 0.4, 0.5
# cellgraph's passes that make up the weight step; the rest are the architecture step.
WEIGHT_PASSES = ("update_weights", "rarts_update_w", "rarts_update_y")


def host():
    """The CPU the rounds ran on, from /proc/cpuinfo and sysfs (Linux); fields it cannot
    read are left out."""
    info = {"logical_cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key, value = key.strip(), value.strip()
                if key == "" and "model_name" in info:
                    break  # the first CPU's block is enough
                if key in ("model name", "cpu family", "model", "vendor_id"):
                    info[key.replace(" ", "_")] = value
                elif key == "flags":
                    info["avx512f"] = "avx512f" in value.split()
    except OSError:
        pass
    caches = "/sys/devices/system/cpu/cpu0/cache"
    for index in sorted(os.listdir(caches)) if os.path.isdir(caches) else []:
        try:
            with open(os.path.join(caches, index, "type")) as f:
                kind = f.read().strip()
            with open(os.path.join(caches, index, "level")) as f:
                level = f.read().strip()
            with open(os.path.join(caches, index, "size")) as f:
                size = f.read().strip()
        except OSError:
            continue
        if kind in ("Data", "Unified"):
            info[f"L{level}"] = size
    return info


def host_text(info):
    name = info.get("model_name", "unknown CPU")
    numbers = (f" (family {info['cpu_family']}, model {info['model']})"
               if "cpu_family" in info and "model" in info else "")
    caches = " ".join(f"{level} {info[level]}" for level in ("L1", "L2", "L3") if level in info)
    caches = f", caches seen by CPU 0: {caches}" if caches else ""
    isa = {True: ", AVX-512", False: ", no AVX-512"}.get(info.get("avx512f"), "")
    return f"{name}{numbers}, {info['logical_cpus']} logical CPUs{caches}{isa}"


def load(out, engine, algo, round_number):
    path = os.path.join(out, f"darts_{algo}_{engine}_round{round_number}.json")
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    result = json.load(open(path))
    with open(path + ".rss") as f:
        result["external_peak_rss_bytes"] = int(f.read())
    if "seconds_per_step" in result:  # cellgraph: name its figures like the reference's
        result["median_s"] = result["seconds_per_step"]
        passes = result.get("passes", [])
        if isinstance(passes, dict):  # sparsenas_bench: {name: {seconds, cpu_seconds}}
            passes = [{"name": k, "seconds": v["seconds"]} for k, v in passes.items()]
        phases = {p["name"]: p["seconds"] for p in passes}
        phases["weight_step"] = sum(s for n, s in phases.items() if n in WEIGHT_PASSES)
        phases["arch_step"] = sum(p["seconds"] for p in passes if p["name"] not in WEIGHT_PASSES)
        result["phases"] = phases
    return result


def seconds(entry):
    """A phase is {median_s, min_s} or a bare number of seconds."""
    return entry["median_s"] if isinstance(entry, dict) else entry


def cell(value, scale=1.0, fmt="{:10.3f}", width=10):
    return fmt.format(value / scale) if value is not None else "-".rjust(width)


def ratio(ours, ref):
    return ours / ref if ours is not None and ref else None


def ratio_text(r):
    return f"{r:7.2f}" if r is not None else f"{'-':>7}"


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def same_selections(ours, ref):
    """None when the reference did not follow cellgraph's selections (darts_step_torch.py
    --selection: nasp and ista), else whether every step ran the same candidates in both
    (entry 0, the state before the first step, left out: the reference has no ISTA-NAS
    support before its first step)."""
    if not ref.get("selection", "own").startswith("cellgraph"):
        return None
    mine, theirs = ours.get("weight_step_selections"), ref.get("weight_step_selections")
    if mine is None or theirs is None or len(mine) != len(theirs):
        return False

    def as_set(entries):
        return {g: sorted(map(tuple, e)) for g, e in entries.items()}

    return all(as_set(a) == as_set(b) for a, b in zip(mine[1:], theirs[1:]))


def detail(algo, ours, ref):
    """Every figure of one algo, both engines."""
    rows = [("median s/step", ours and ours.get("median_s"), ref["median_s"], 1.0),
            ("min s/step", ours and ours.get("min_s"), ref["min_s"], 1.0)]
    for name, entry in ref["phases"].items():
        mine = ours and ours.get("phases", {}).get(name)
        rows.append((f"  {name} (median s)", mine, entry and seconds(entry), 1.0))
    for key, label in (("peak_rss_bytes", "peak RSS MiB"),
                       ("external_peak_rss_bytes", "peak RSS MiB (outside)")):
        rows.append((label, ours and ours.get(key), ref.get(key), MIB))
    increase = ref["peak_rss_bytes"] - ref["baseline_rss_bytes"]
    rows.append(("PyTorch peak RSS - baseline MiB", None, increase, MIB))
    print(f"{algo}  ({ref['engine']}, threads {ref['threads']}, batch {ref['batch']}"
          + (f"; cellgraph threads {ours.get('threads')}" if ours else "; no cellgraph run")
          + f"; load {ref['load_average_start'][0]:.1f} -> {ref['load_average_end'][0]:.1f})")
    for label, mine, theirs, scale in rows:
        print(f"  {label:34} {cell(mine, scale)} {cell(theirs, scale)} "
              f"{ratio_text(ratio(mine, theirs))}")
    if "candidates_run" in ref:
        runs = ", ".join(f"{k} {a}+{f}" for k, (a, f) in ref["candidates_run"].items())
        print(f"  PyTorch candidate ops run (autograd+forward-only): {runs}")
    if "selection" in ref:
        print(f"  PyTorch selection: {ref['selection']}")
    if ours and "weight_step_selections" in ours:
        counts = [sum(len(e) for e in step.values()) for step in ours["weight_step_selections"]]
        print(f"  cellgraph weight-step candidates per step (0: before the first; 0 = every "
              f"one): {' '.join(map(str, counts))}"
              + ("" if "selection" in ref else "; the reference runs its own"))
    if ours and "weight_step_candidates" in ours:
        print(f"  cellgraph candidate ops run: architecture passes {ours['arch_pass_recorded']}"
              f"+{ours['arch_pass_forward_only']}, weight step {ours['weight_step_candidates']}")


def main():
    out, algos = sys.argv[1], sys.argv[2:]
    combined, summary, mismatches = [], [], []
    print(f"\n{'algo / measure':36} {'cellgraph':>10} {'pytorch':>10} {'ratio':>7}")
    for algo in algos:
        rounds = []  # (ours, ref) per round
        while (ref := load(out, "pytorch", algo, len(rounds) + 1)) is not None:
            rounds.append((load(out, "cellgraph", algo, len(rounds) + 1), ref))
        if not rounds:
            print(f"{algo}: no PyTorch result (see the messages above)")
            continue
        time_ratios, rss_ratios = [], []
        for number, (ours, ref) in enumerate(rounds, 1):
            if len(rounds) > 1:
                print(f"round {number} of {len(rounds)}:")
            detail(algo, ours, ref)
            if ours is not None and ours.get("weights") != ref["weights"]:
                mismatches.append(f"{algo} (round {number}): cellgraph {ours.get('weights')} "
                                  f"weights, PyTorch {ref['weights']}")
            if ours is not None and same_selections(ours, ref) is False:
                mismatches.append(f"{algo} (round {number}): the engines' steps ran different "
                                  f"candidate ops (weight_step_selections)")
            time_ratios.append(ratio(ours and ours["median_s"], ref["median_s"]))
            rss_ratios.append(ratio(ours and ours["peak_rss_bytes"], ref["peak_rss_bytes"]))
            combined.append({"algo": algo, "round": number, "cellgraph": ours, "pytorch": ref})
        if len(rounds) > 1:
            print(f"  time ratio by round: {' '.join(ratio_text(r).strip() for r in time_ratios)}"
                  f"; median {ratio_text(median_or_none(time_ratios)).strip()}")
        time_r, rss_r = median_or_none(time_ratios), median_or_none(rss_ratios)
        summary.append({"algo": algo, "weights": rounds[0][1]["weights"], "rounds": len(rounds),
                        "cellgraph_s": median_or_none(
                            [ours and ours["median_s"] for ours, _ in rounds]),
                        "pytorch_s": statistics.median(ref["median_s"] for _, ref in rounds),
                        "time_ratio": time_r, "time_ratios": time_ratios,
                        "cellgraph_peak_rss_bytes": median_or_none(
                            [ours and ours["peak_rss_bytes"] for ours, _ in rounds]),
                        "pytorch_peak_rss_bytes": statistics.median(
                            ref["peak_rss_bytes"] for _, ref in rounds),
                        "rss_ratio": rss_r,
                        "time_target_met": time_r is not None and time_r <= TIME_TARGET,
                        "rss_target_met": rss_r is not None and rss_r <= RSS_TARGET})

    def met(value, ok):
        return f"{'-':>8}" if value is None else f"{'met' if ok else 'NOT met':>8}"

    machine = host()
    print(f"\nhost: {host_text(machine)}")
    print(f"summary: median s/step and peak RSS (each process's own high-water mark), "
          f"ratio = cellgraph / PyTorch; targets time <= {TIME_TARGET}x, RSS <= {RSS_TARGET}x; "
          f"with several rounds the medians over rounds, ratios the median of each round's")
    print(f"{'algo':12} {'rounds':>6} {'cg s':>8} {'torch s':>8} {'ratio':>6} {'cg MiB':>8} "
          f"{'torch MiB':>9} {'ratio':>6} {'time':>8} {'RSS':>8}")
    for s in summary:
        print(f"{s['algo']:12} {s['rounds']:6d} {cell(s['cellgraph_s'], 1, '{:8.3f}', 8)} "
              f"{s['pytorch_s']:8.3f} {ratio_text(s['time_ratio']):>6} "
              f"{cell(s['cellgraph_peak_rss_bytes'], MIB, '{:8.0f}', 8)} "
              f"{s['pytorch_peak_rss_bytes'] / MIB:9.0f} {ratio_text(s['rss_ratio']):>6} "
              f"{met(s['time_ratio'], s['time_target_met'])} "
              f"{met(s['rss_ratio'], s['rss_target_met'])}")
    json.dump({"host": machine, "runs": combined, "summary": summary,
               "weight_mismatches": mismatches},
              open(os.path.join(out, "darts_compare.json"), "w"), indent=1)
    if mismatches:
        print("\nrun_darts_bench: MISMATCH, the engines ran different networks or ops:\n  "
              + "\n  ".join(mismatches), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
