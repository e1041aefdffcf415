"""The results as a PNG: verification and signing as ratios to raw crypto, the CLI in ms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["draw"]


def draw(rows: list[dict[str, Any]], machine: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    panels = [
        ("verify", "verifying ID tokens (× raw RSA verify, log scale)", "ratio", True),
        ("sign", "signing (× raw RSA sign)", "ratio", False),
        ("cli", "command line (ms, log scale)", "value", True),
    ]
    figure, axes = plt.subplots(len(panels), 1, figsize=(10, 9), gridspec_kw={"height_ratios": [7, 3, 3]})
    for axis, (group, title, field, log) in zip(axes, panels, strict=True):
        chosen = [row for row in rows if row["group"] == group and row[field]]
        names = [row["name"] for row in chosen]
        values = [row[field] for row in chosen]
        colors = ["#1a73e8" if row["name"].startswith(("gcptoken", "emulator")) else "#9aa0a6" for row in chosen]
        axis.barh(names, values, color=colors)
        axis.invert_yaxis()
        if log:
            axis.set_xscale("log")
        axis.set_title(title, loc="left", fontsize=10)
        for index, value in enumerate(values):
            axis.text(value, index, f" {value:g}", va="center", fontsize=8)
        axis.tick_params(labelsize=8)
    figure.suptitle(
        f"gcptoken benchmarks, {machine['date']}: {machine['cpu']} ×{machine['cpus']}, Python {machine['python']}",
        fontsize=10,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
