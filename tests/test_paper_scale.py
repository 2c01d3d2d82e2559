"""Paper-scale checks (opt in: `make test-paper`): the papers' qualitative claims at their sizes."""

from __future__ import annotations

import pytest
from conftest import compose

from noisereg.app import run
from noisereg.tracking import read_metrics


@pytest.mark.paper_scale
def test_fig2_only_layerwise_noise_minimises_the_regularised_loss_when_wide(tmp_path):
    """Orvieto Fig. 2: with 300 hidden units GD+noise stays well above the regularised loss layer-wise noise
    reaches (variance explosion, Sec. 3.1); with 50 the two end close together."""
    final = {}
    for width in (50, 300):
        for noise in ("gd_noise", "layerwise"):
            for seed in (0, 1, 2):
                folder = tmp_path / f"{width}-{noise}-{seed}"
                run(
                    compose(
                        "+experiment=fig2_synthetic",
                        f"model.widths=[{width}]",
                        f"noise={noise}",
                        f"seed={seed}",
                        "logger.mode=disabled",
                    ),
                    folder,
                )
                final[width, noise, seed] = read_metrics(folder)[-1]["loss/regularized"]
    gaps = {
        width: [final[width, "gd_noise", s] / final[width, "layerwise", s] for s in (0, 1, 2)] for width in (50, 300)
    }
    print("GD+noise / layer-wise final regularised loss, seeds 0-2:", gaps)
    assert all(gap > 1.15 for gap in gaps[300]), "GD+noise stays above layer-wise at width 300"
    assert all(wide > narrow for wide, narrow in zip(gaps[300], gaps[50])), "the gap grows with width"
