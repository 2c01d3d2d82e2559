"""CUDA paths: run only where a GPU is present (listed as skipped, with the reason, elsewhere)."""
from __future__ import annotations

import pytest
import torch

from conftest import compose
from noisereg.app import run
from noisereg.curvature import hessian_trace
from noisereg.models import MLP

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("noise", ["gd", "gd_noise", "layerwise", "label_noise", "nin", "gni", "gni_explicit"])
def test_every_noise_mode_trains_on_cuda(tmp_path, noise):
    summary = run(compose(f"noise={noise}", "model=mlp", "model.widths=[64,64]", "trainer.steps=20",
                          "trainer.batch_size=16", "trainer.device=cuda", "curvature.every=10",
                          "logger.mode=disabled"), tmp_path)
    assert summary["status"] == "completed" and summary["device"].startswith("cuda")


def test_exact_trace_on_cuda_matches_cpu():
    model = MLP(20, 5, [32, 32], generator=torch.Generator().manual_seed(0)).double()
    x = torch.randn(64, 20, dtype=torch.float64)
    y = torch.randint(0, 5, (64,))
    loss_fn = torch.nn.CrossEntropyLoss()
    on_cpu = hessian_trace(model, loss_fn, x, y, method="exact").value
    on_gpu = hessian_trace(model.cuda(), loss_fn, x.cuda(), y.cuda(), method="exact").value
    assert on_gpu == pytest.approx(on_cpu, rel=1e-10)
