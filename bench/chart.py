"""A PNG chart of the latency distributions, drawn without any plotting library
(the benchmark installs nothing and matplotlib is not on the machine): a raster
canvas, a 5x7 bitmap font, and a PNG encoder (zlib + struct).

One group per benchmark, one row per runtime: every sample as a dot, a box from the
25th to the 75th percentile, a whisker from the 10th to the 90th, and the median as a
thick dark bar, on a shared logarithmic time axis."""
from __future__ import annotations

import math
import struct
import zlib

# 5x7 glyphs, one string per row ("#" = ink). Text is drawn lowercase.
_GLYPHS = {
    "a": [".....", ".....", ".###.", "....#", ".####", "#...#", ".####"],
    "b": ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."],
    "c": [".....", ".....", ".###.", "#....", "#....", "#...#", ".###."],
    "d": ["....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"],
    "e": [".....", ".....", ".###.", "#...#", "#####", "#....", ".###."],
    "f": ["..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."],
    "g": [".....", ".####", "#...#", "#...#", ".####", "....#", ".###."],
    "h": ["#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"],
    "i": ["..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."],
    "j": ["...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."],
    "k": ["#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."],
    "l": [".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."],
    "m": [".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"],
    "n": [".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"],
    "o": [".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."],
    "p": [".....", ".....", "####.", "#...#", "####.", "#....", "#...."],
    "q": [".....", ".....", ".##.#", "#..##", ".####", "....#", "....#"],
    "r": [".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."],
    "s": [".....", ".....", ".###.", "#....", ".###.", "....#", "####."],
    "t": [".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."],
    "u": [".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"],
    "v": [".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."],
    "w": [".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."],
    "x": [".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"],
    "y": [".....", ".....", "#...#", "#...#", ".####", "....#", ".###."],
    "z": [".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"],
    "0": [".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."],
    "1": ["..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."],
    "2": [".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"],
    "3": ["#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."],
    "4": ["...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."],
    "5": ["#####", "#....", "####.", "....#", "....#", "#...#", ".###."],
    "6": ["..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."],
    "7": ["#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."],
    "8": [".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."],
    "9": [".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."],
    " ": ["....."] * 7,
    "+": [".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."],
    "-": [".....", ".....", ".....", "#####", ".....", ".....", "....."],
    "/": [".....", "....#", "...#.", "..#..", ".#...", "#....", "....."],
    ".": [".....", ".....", ".....", ".....", ".....", ".##..", ".##.."],
    "(": ["...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."],
    ")": [".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."],
    ":": [".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."],
    ",": [".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."],
    "=": [".....", ".....", "#####", ".....", "#####", ".....", "....."],
    "%": ["##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"],
    "_": [".....", ".....", ".....", ".....", ".....", ".....", "#####"],
    "<": ["...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."],
    ">": [".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."],
    "|": ["..#.."] * 7,
    "'": ["..#..", "..#..", ".#...", ".....", ".....", ".....", "....."],
    "?": [".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."],
}
_SCALE = 2
_ADVANCE = 6 * _SCALE
_LINE = 10 * _SCALE

WHITE = (255, 255, 255)
BLACK = (20, 20, 20)
GRID = (225, 225, 225)
GREY = (120, 120, 120)
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.pixels = bytearray(bytes(WHITE) * (width * height))

    def rect(self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int]) -> None:
        """Filled rectangle, corners inclusive, clipped to the canvas."""
        x0, x1 = max(0, min(x0, x1)), min(self.width - 1, max(x0, x1))
        y0, y1 = max(0, min(y0, y1)), min(self.height - 1, max(y0, y1))
        if x0 > x1 or y0 > y1:
            return
        run = bytes(color) * (x1 - x0 + 1)
        for y in range(y0, y1 + 1):
            start = (y * self.width + x0) * 3
            self.pixels[start:start + len(run)] = run

    def outline(self, x0: int, y0: int, x1: int, y1: int, color: tuple[int, int, int]) -> None:
        self.rect(x0, y0, x1, y0, color)
        self.rect(x0, y1, x1, y1, color)
        self.rect(x0, y0, x0, y1, color)
        self.rect(x1, y0, x1, y1, color)

    def text(self, x: int, y: int, text: str, color: tuple[int, int, int] = BLACK) -> int:
        """Draws `text` with its top-left corner at (x, y); returns the x after it."""
        for char in text.lower().replace("×", "x"):
            glyph = _GLYPHS.get(char, _GLYPHS["?"])
            for row, bits in enumerate(glyph):
                for column, bit in enumerate(bits):
                    if bit == "#":
                        self.rect(x + column * _SCALE, y + row * _SCALE,
                                  x + column * _SCALE + _SCALE - 1, y + row * _SCALE + _SCALE - 1, color)
            x += _ADVANCE
        return x

    def png(self) -> bytes:
        stride = self.width * 3
        raw = b"".join(b"\x00" + bytes(self.pixels[y * stride:(y + 1) * stride])
                       for y in range(self.height))

        def chunk(kind: bytes, data: bytes) -> bytes:
            return (struct.pack(">I", len(data)) + kind + data
                    + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

        header = struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def text_width(text: str) -> int:
    return len(text) * _ADVANCE


def _quantile(ordered: list[float], fraction: float) -> float:
    position = fraction * (len(ordered) - 1)
    low = int(math.floor(position))
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _ticks(low: float, high: float) -> list[float]:
    ticks = []
    decade = 10.0 ** math.floor(math.log10(low))
    while decade <= high * 10:
        for step in (1, 2, 5):
            value = step * decade
            if low <= value <= high:
                ticks.append(value)
        decade *= 10
    return ticks


def latency_chart(groups: list[tuple[str, dict[str, list[float]]]], runtimes: list[str],
                  title: str) -> bytes:
    """groups: [(benchmark title, {runtime: samples in ms})] -> PNG bytes."""
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(runtimes)}
    everything = [v for _, per in groups for samples in per.values() for v in samples if v > 0]
    low = min(everything) if everything else 1.0
    high = max(everything) if everything else 1000.0
    # Round the axis out to 1-2-5 steps so that both ends carry tick labels.
    steps = [m * 10.0 ** e for e in range(-1, 6) for m in (1, 2, 5)]
    low = max([s for s in steps if s <= low] or [steps[0]])
    high = min([s for s in steps if s >= high] or [steps[-1]])

    label_width = max(text_width(name) for name, _ in groups) + 40
    left, right_margin = max(label_width, 260), 30
    width = max(1100, left + 700 + right_margin)
    row_height, group_gap, top = 26, 30, 90
    rows = sum(len(per) for _, per in groups)
    height = top + rows * row_height + len(groups) * (group_gap + _LINE) + 70
    canvas = Canvas(width, height)
    plot_x0, plot_x1 = left, width - right_margin

    def x_of(value: float) -> int:
        value = min(max(value, low), high)
        fraction = (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low))
        return int(round(plot_x0 + fraction * (plot_x1 - plot_x0)))

    canvas.text(20, 16, title)
    legend_x = 20
    for name in runtimes:
        canvas.rect(legend_x, 48, legend_x + 14, 62, colors[name])
        legend_x = canvas.text(legend_x + 22, 49, name) + 30
    canvas.text(legend_x, 49, "box: p25-p75, line: p10-p90, bar: median", GREY)

    plot_top, plot_bottom = top - 10, height - 60
    for tick in _ticks(low, high):
        x = x_of(tick)
        canvas.rect(x, plot_top, x, plot_bottom, GRID)
        label = f"{tick:g}"
        canvas.text(x - text_width(label) // 2, plot_bottom + 8, label, GREY)
    canvas.text(plot_x1 - text_width("ms (log scale)"), plot_bottom + 32, "ms (log scale)", GREY)

    y = top
    for name, per in groups:
        canvas.text(20, y, name)
        y += _LINE + 4
        for runtime in runtimes:
            samples = per.get(runtime)
            if not samples:
                continue
            color = colors[runtime]
            mid = y + row_height // 2
            canvas.text(40, mid - 7, runtime, color)
            ordered = sorted(samples)
            p10, p25, p50, p75, p90 = (_quantile(ordered, f) for f in (0.1, 0.25, 0.5, 0.75, 0.9))
            canvas.rect(x_of(p10), mid, x_of(p90), mid, color)
            canvas.rect(x_of(p25), mid - 8, x_of(p75), mid + 8, WHITE)
            canvas.outline(x_of(p25), mid - 8, x_of(p75), mid + 8, color)
            for index, value in enumerate(samples):
                # Deterministic jitter spreads equal values over the row's height.
                offset = (index * 7) % 13 - 6
                x = x_of(value)
                canvas.rect(x - 1, mid + offset - 1, x + 1, mid + offset + 1, color)
            median_x = x_of(p50)
            canvas.rect(median_x - 1, mid - 11, median_x + 1, mid + 11, BLACK)
            y += row_height
        y += group_gap - 8
        canvas.rect(20, y - 10, plot_x1, y - 10, GRID)
    return canvas.png()
