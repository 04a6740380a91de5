"""A PNG chart of the latency distributions, drawn by matplotlib (the optional `bench`
extra: `pip install "pyrunc[bench]"`); `available()` says whether it can be drawn here.

One panel per benchmark, one row per runtime: every sample as a dot, a box from the
25th to the 75th percentile, whiskers from the 10th to the 90th, and the median as a
thick dark bar, on a shared logarithmic time axis."""
from __future__ import annotations

import io


def available() -> bool:
    """True when matplotlib is installed (the chart is skipped otherwise)."""
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None


def latency_chart(groups: list[tuple[str, dict[str, list[float]]]], runtimes: list[str],
                  title: str) -> bytes:
    """groups: [(benchmark title, {runtime: samples in ms})] -> PNG bytes."""
    import matplotlib
    matplotlib.use("Agg")  # no display: render to a buffer
    from matplotlib import pyplot, ticker

    colors = {name: f"C{i}" for i, name in enumerate(runtimes)}
    heights = [max(1, sum(1 for r in runtimes if per.get(r))) for _, per in groups]
    figure, axes = pyplot.subplots(len(groups), 1, sharex=True, squeeze=False,
                                   figsize=(11, 1.2 + 0.45 * sum(heights) + 0.35 * len(groups)),
                                   gridspec_kw={"height_ratios": heights})
    for axis, (name, per) in zip(axes[:, 0], groups):
        present = [r for r in runtimes if per.get(r)]
        data = [per[r] for r in present]
        positions = list(range(len(present), 0, -1))  # first runtime on top
        if data:
            boxes = axis.boxplot(data, vert=False, positions=positions, whis=(10, 90),
                                 showfliers=False, widths=0.55, patch_artist=True,
                                 medianprops={"color": "black", "linewidth": 2.5})
            for patch, runtime in zip(boxes["boxes"], present):
                patch.set(facecolor="white", edgecolor=colors[runtime])
            for position, runtime, samples in zip(positions, present, data):
                # deterministic jitter spreads equal values over the row's height
                offsets = [((i * 7) % 13 - 6) / 40 for i in range(len(samples))]
                axis.scatter(samples, [position + o for o in offsets], s=5, zorder=3,
                             color=colors[runtime], alpha=0.7, linewidths=0)
        axis.set_yticks(positions, present)
        axis.set_title(name, loc="left", fontsize=10)
        axis.set_xscale("log")
        # plain numbers (2, 5, 10, 20 ms), not powers of ten
        axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.xaxis.set_minor_formatter(ticker.FuncFormatter(
            lambda v, _: f"{v:g}" if f"{v:g}"[0] in "25" else ""))
        axis.grid(axis="x", which="both", color="0.9")
    axes[-1, 0].set_xlabel("ms (log scale); box: p25-p75, whiskers: p10-p90, bar: median")
    figure.suptitle(title, x=0.01, ha="left")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    pyplot.close(figure)
    return buffer.getvalue()
