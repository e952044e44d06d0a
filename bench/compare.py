"""Prints two benchmark JSON files side by side: ours / reference per case, and the ratio
(ours divided by reference: below 1 means cellgraph is faster). Optionally writes the
combined JSON."""
import json
import sys


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: compare.py OURS.json REFERENCE.json [COMBINED.json]")
    ours = json.load(open(sys.argv[1]))
    ref = json.load(open(sys.argv[2]))
    if ours.get("pass") != ref.get("pass"):
        sys.exit(f"compare.py: {sys.argv[1]} times {ours.get('pass')}, {sys.argv[2]} "
                 f"{ref.get('pass')}; run both with the same flags")
    ref_by_name = {c["name"]: c for c in ref["cases"]}
    rows = []
    print(f"{'case':32} {'cellgraph ms':>13} {'reference ms':>13} {'ratio':>7}")
    for c in ours["cases"]:
        r = ref_by_name.get(c["name"])
        if r is None:
            sys.exit(f"compare.py: case {c['name']} missing from {sys.argv[2]}")
        ratio = c["median_ms"] / r["median_ms"]
        rows.append({"name": c["name"], "cellgraph_ms": c["median_ms"],
                     "reference_ms": r["median_ms"], "ratio": round(ratio, 3)})
        print(f"{c['name']:32} {c['median_ms']:13.3f} {r['median_ms']:13.3f} {ratio:7.2f}")
    ratios = sorted(row["ratio"] for row in rows)
    print(f"median ratio {ratios[len(ratios) // 2]:.2f}  ({ours.get('pass')}; threads: ours "
          f"{ours['threads']}, "
          f"reference {ref['threads']}; reference engine: {ref['engine']})")
    if len(sys.argv) > 3:
        json.dump({"ours": ours, "reference": ref, "rows": rows}, open(sys.argv[3], "w"), indent=1)


if __name__ == "__main__":
    main()
