"""matplotlib, when installed (``crmload[report]``; the benchmarks' ``bench`` extra has it too): one place
that picks the headless backend, a house style, and turns a figure into a PNG file or inline SVG.

Shared by ``crmload report`` and ``benchmarks/plots.py``.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

__all__ = ["PALETTE", "available", "pyplot", "save_png", "style_axes", "svg_data_uri"]

#: One colour per quantity, the same in every chart of a report.
PALETTE = {
    "records": "#1f5fa8",
    "p50": "#2a9d8f",
    "p95": "#e76f51",
    "retries": "#f4a261",
    "busy": "#d62828",
    "throttles": "#7b2cbf",
    "rate": "#264653",
    "batch": "#8d99ae",
    "mean": "#6c757d",
}


def available() -> bool:
    """Whether matplotlib is installed; without it a report has no charts (and says so)."""
    try:
        import matplotlib  # noqa: F401, PLC0415 - optional
    except ImportError:
        return False
    return True


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib  # noqa: PLC0415 - optional

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def save_png(fig: Any, path: Path, dpi: int = 100) -> Path:
    """Write ``fig`` as a PNG (byte-stable for the same data: no software/date metadata) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi, metadata={"Software": None})
    pyplot().close(fig)
    return path


def svg_data_uri(fig: Any) -> str:
    """``fig`` as a ``data:image/svg+xml`` URI (glyphs as paths: no font to fetch), and close it."""
    buf = io.BytesIO()
    fig.tight_layout()
    with _rc({"svg.fonttype": "path", "svg.hashsalt": "crmload"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    pyplot().close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _rc(values: dict[str, Any]) -> Any:
    import matplotlib  # noqa: PLC0415 - optional

    rc_context: Any = matplotlib.rc_context  # its keys are typed as literals; ours are checked by matplotlib
    return rc_context(values)


def style_axes(ax: Any, title: str, ylabel: str) -> None:
    """The house style: a left-aligned title, light grid, no top/right frame."""
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold", color="#1d2939")
    ax.set_ylabel(ylabel, fontsize=9, color="#475467")
    ax.grid(True, color="#e4e7ec", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#98a2b3")
    ax.tick_params(labelsize=8, colors="#475467")
