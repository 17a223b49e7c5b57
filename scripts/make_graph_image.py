"""Draws computation_graph.png (shown in the README) from a real example with draw_dot.

    python scripts/make_graph_image.py [output.png]

The example: micrograd's moons model, shrunk to MLP(2, [4, 1]), scoring four points with
the hinge loss; after backward(), so every tensor shows its gradient statistics. Needs the
viz extra (it renders with `dot` when installed, else with graphviz-pure).
"""

from __future__ import annotations

import sys
from pathlib import Path

import mikagrad as mg
import mikagrad.functional as F
from mikagrad import nn
from mikagrad.data import make_moons
from mikagrad.visualization import draw_dot

ROOT = Path(__file__).resolve().parent.parent


def example() -> tuple[mg.Value, nn.Module]:
    mg.manual_seed(0)
    x, y = make_moons(n_samples=4, noise=0.1, random_state=0)
    model = nn.MLP(2, [4, 1])
    scores = model(mg.tensor(x))
    loss = F.hinge_loss(scores, mg.tensor(y.reshape(-1, 1) * 2.0 - 1.0))
    loss.backward()
    return loss, model


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else ROOT / "computation_graph.png"
    loss, model = example()
    dot = draw_dot(loss, format="png", rankdir="TB", params=model)
    dot.attr(dpi="110")
    out.write_bytes(dot.pipe(format="png"))
    print(f"wrote {out} (loss {loss.item():.4f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
