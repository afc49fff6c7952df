"""Draw bench/results/compare.png from compare.json (run by compare.py with the peers' venv: matplotlib).

    bench/.peers/venv/bin/python bench/peers/chart.py compare.json compare.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {"durablehost-sqlite": "#1f77b4", "durablehost-azurite": "#6baed6",
           "durablehost-sqlite-w2": "#17becf", "durablehost-azurite-w2": "#9edae5", "dbos": "#2ca02c",
           "restate": "#ff7f0e", "temporal": "#9467bd"}


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    report = json.loads(source.read_text())
    metrics = report["metrics"]
    systems = report["systems"]
    columns = 4
    rows = (len(metrics) + columns - 1) // columns
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 3.6 * rows + 1.2))
    flat = list(axes.flat)
    for ax, metric in zip(flat, metrics, strict=False):
        names, medians, lows, highs, colours = [], [], [], [], []
        for system in systems:
            figure = report["results"][system][metric["key"]]
            if figure["median"] is None:
                continue
            names.append(system.replace("durablehost-", "dh-"))
            medians.append(figure["median"])
            lows.append(figure["median"] - min(figure["runs"]))
            highs.append(max(figure["runs"]) - figure["median"])
            colours.append(COLOURS.get(system, "grey"))
        ax.bar(range(len(names)), medians, yerr=[lows, highs], color=colours, capsize=4)
        positive = [v for v in medians if v > 0]
        tops = [m + h for m, h in zip(medians, highs, strict=True)]
        if positive and max(tops) / min(positive) > 30:  # one system far off: keep the others visible
            ax.set_yscale("log")
            arrow_note = ", log scale"
        else:
            arrow_note = ""
        labels = [f"{name}\n{value:.3g}" for name, value in zip(names, medians, strict=True)]
        ax.set_xticks(range(len(names)), labels, fontsize=7)
        arrow = "higher is better" if metric["higher_is_better"] else "lower is better"
        ax.set_title(f"{metric['label']}\n({metric['unit']}, {arrow}{arrow_note})", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
    for ax in flat[len(metrics):]:
        ax.axis("off")
    m = report["machine"]
    unavailable = "; ".join(f"{k} unavailable" for k in report["unavailable"]) or "all selected systems ran"
    fig.suptitle("durablehost vs DBOS, Restate, Temporal: medians, bars = min-max over "
                 f"{report['repeats']} run(s)", fontsize=11)
    fig.text(0.01, 0.01,
             f"{m['cpus']} CPUs, {m['cpu_model']}, {m['memory_gb']} GB; Python {m['python']} (durablehost), "
             f"{m['peers_python']} (peers), Node {m['node']}; load avg {m['load_average']} -> "
             f"{report['load_average_after']}; {report['when']}; commit {m['commit']}; {unavailable}",
             fontsize=7)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main()
