"""Turn a pytest-benchmark JSON file into the Markdown table shown in the README.

    python benchmarks/report.py .benchmarks/latest.json

For each group: every row's mean time per round, its throughput (``extra_info["work"]``
per second, in ``extra_info["unit"]``), and its ratio to the group's baseline — the first
row that is neither twin (``stdlib``, ``smtplib``, ``naive`` ...), so "12.0×" reads
"twelve times the baseline's throughput".
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from typing import Any

TWINS = ("cython", "python")


def human_rate(rate: float, unit: str) -> str:
    if unit == "B":
        return f"{rate / 1e9:.2f} GB/s" if rate >= 1e9 else f"{rate / 1e6:.1f} MB/s"
    for scale, prefix in ((1e6, "M"), (1e3, "k")):
        if rate >= scale:
            return f"{rate / scale:.2f} {prefix}{unit}/s"
    return f"{rate:.1f} {unit}/s"


def human_time(seconds: float) -> str:
    for scale, suffix in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
        if seconds >= scale:
            return f"{seconds / scale:.2f} {suffix}"
    return f"{seconds / 1e-9:.0f} ns"


def impl_of(bench: dict[str, Any]) -> str:
    params = bench.get("params") or {}
    return str(params.get("impl", bench.get("param", bench["name"])))


def table(data: dict[str, Any]) -> str:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for bench in data["benchmarks"]:
        groups[bench["group"] or bench["name"]].append(bench)
    lines = [
        "| benchmark | implementation | mean time | throughput | vs baseline |",
        "|---|---|---:|---:|---:|",
    ]
    for group, benches in groups.items():
        order = {name: i for i, name in enumerate(TWINS)}
        benches.sort(key=lambda b: order.get(impl_of(b), len(order)))
        baseline = next((b for b in benches if impl_of(b) not in TWINS), None)
        base_rate = None
        if baseline is not None:
            base_rate = baseline["extra_info"]["work"] / baseline["stats"]["mean"]
        for bench in benches:
            mean = bench["stats"]["mean"]
            rate = bench["extra_info"]["work"] / mean
            ratio = f"{rate / base_rate:.1f}×" if base_rate else "—"
            unit = bench["extra_info"]["unit"]
            lines.append(
                f"| {group} | {impl_of(bench)} | {human_time(mean)} | "
                f"{human_rate(rate, unit)} | {ratio} |"
            )
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        data = json.load(f)
    machine = data.get("machine_info", {})
    print(
        f"{machine.get('python_implementation', '')} {machine.get('python_version', '')}, "
        f"{machine.get('cpu', {}).get('brand_raw', 'unknown CPU')}\n"
    )
    print(table(data))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
