"""Markdown table for docs/RELIABILITY.md from the JSON files `bench/full_run.sh` writes.

Usage: .venv/bin/python bench/render_table.py /tmp/pklab-full
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pgkeel.lab.faults import FAULTS  # every fault the lab knows, so a new one cannot be left out


def fmt(stat: dict[str, float | None]) -> str:
    if stat["median"] is None:
        return "–"
    return f"{stat['median']:.2f} ({stat['min']:.2f}–{stat['max']:.2f})"


def main(directory: Path) -> None:
    print(
        "| fault | mode | trials | outage s median (min–max) | detect s | promote s | rejoin s "
        "| lost acked | split-brain windows | phantoms | rejoin failures |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for fault in FAULTS:
        for mode in ("quorum", "async"):
            path = directory / f"{fault}-{mode}.json"
            if not path.exists():
                continue
            d = json.loads(path.read_text())
            s = d["stats"]
            print(
                f"| {fault} | {mode} | {len(d['trials'])} | {fmt(s['outage_s'])} | {fmt(s['detect_s'])} "
                f"| {fmt(s['promote_s'])} | {fmt(s['rejoin_s'])} | {d['lost_acked_total']} "
                f"| {d['split_brain_windows_total']} | {d['phantoms_total']} | {d['rejoin_failures']} |"
            )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results"))
