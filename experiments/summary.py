#!/usr/bin/env python3
"""Prints results.jsonl (experiments/run.sh) as markdown tables: held-out text loss and caption
accuracy per run, few-shot accuracy per run and k. Usage: summary.py RESULTS.jsonl"""
import json
import sys
from collections import defaultdict


def main():
    rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
    cell = defaultdict(dict)  # (run, seed) -> what -> value
    for r in rows:
        res = r["result"]
        cell[(r["run"], r["seed"])][r["what"]] = res.get("text_loss", res.get("accuracy"))
    print("| run | seed | text loss (nats/token) | caption acc | few-shot k=0 | k=4 | k=4 + hint |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for (run, seed), c in sorted(cell.items(), key=lambda kv: kv[0][1]):
        loss = c.get("text_loss", c.get("text_loss_step0"))
        fmt = lambda k: "%.1f %%" % (100 * c[k]) if k in c else ""
        print("| %s | %d | %s | %s | %s | %s | %s |" % (
            run, seed, "%.3f" % loss if loss is not None else "", fmt("caption"),
            fmt("fewshot_k0"), fmt("fewshot_k4"), fmt("fewshot_k4_hint")))


if __name__ == "__main__":
    main()
