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
    summary = run(
        compose(
            f"noise={noise}",
            "model=mlp",
            "model.widths=[64,64]",
            "trainer.steps=20",
            "trainer.batch_size=16",
            "trainer.device=cuda",
            "curvature.every=10",
            "logger.mode=disabled",
        ),
        tmp_path,
    )
    assert summary["status"] == "completed" and summary["device"].startswith("cuda")


def test_exact_trace_on_cuda_matches_cpu():
    model = MLP(20, 5, [32, 32], generator=torch.Generator().manual_seed(0)).double()
    x = torch.randn(64, 20, dtype=torch.float64)
    y = torch.randint(0, 5, (64,))
    loss_fn = torch.nn.CrossEntropyLoss()
    on_cpu = hessian_trace(model, loss_fn, x, y, method="exact").value
    on_gpu = hessian_trace(model.cuda(), loss_fn, x.cuda(), y.cuda(), method="exact").value
    assert on_gpu == pytest.approx(on_cpu, rel=1e-10)


def test_a_smoke_resnet_trains_on_cuda_with_bf16_channels_last_and_compile(tmp_path, cifar10_root):
    """The GPU defaults (bf16 autocast, channels-last) and trainer.compile on the Fig. 6 recipe, fixture data."""
    summary = run(
        compose(
            "+experiment=fig6_resnet",
            "scale=smoke",
            f"dataset.root={cifar10_root}",
            "trainer.batch_size=32",
            "trainer.compile=true",
            "trainer.device=cuda",
            "logger.mode=disabled",
        ),
        tmp_path,
    )
    assert summary["status"] == "completed" and summary["device"].startswith("cuda")
    assert {"test/acc", "hessian/trace"} <= set(summary["final_metrics"])


def test_the_image_pipeline_on_cuda_crops_and_flips_as_on_the_cpu(cifar10_root):
    from noisereg.data import BatchIterator, cifar10

    data = cifar10(root=str(cifar10_root))
    on_gpu = data.to("cuda", channels_last=True)
    cpu = BatchIterator(data.train_inputs, data.train_targets, 64, seed=0, pipeline=data.pipeline)
    gpu = BatchIterator(on_gpu.train_inputs, on_gpu.train_targets, 64, seed=0, pipeline=on_gpu.pipeline)
    for _ in range(2 * cpu.steps_per_epoch):
        a, b = next(cpu), next(gpu)
        assert torch.equal(a.indices, b.indices.cpu()) and b.inputs.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(a.inputs, b.inputs.cpu(), rtol=0, atol=1e-5)


def test_parameter_noise_on_cuda_restores_bitwise_with_the_right_spread():
    from noisereg.models import build_model
    from noisereg.noise import AllParamNoise, LayerwiseNoise

    model = build_model("resnet18", (3, 32, 32), 10, torch.Generator().manual_seed(0)).cuda()
    model = model.to(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    for noise in (AllParamNoise(model, sigma=0.5, seed=0), LayerwiseNoise(model, sigma=0.5, seed=0)):
        for _ in range(3):
            with noise.perturbed():
                deltas = torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before)])
                moved = deltas[deltas != 0]
                expected = 0.5 / 62**0.5 if isinstance(noise, AllParamNoise) else 0.5
                # a layer-wise draw may hit a 64-element BatchNorm vector: 5 standard errors of a sample std
                assert abs(moved.std().item() / expected - 1) < 5 / (2 * moved.numel()) ** 0.5
            assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))


def test_exact_trace_of_a_resnet_on_cuda_matches_cpu():
    from noisereg.models import build_model

    model = build_model("resnet18", (3, 16, 16), 10, torch.Generator().manual_seed(0), widths=[8, 16, 16, 16])
    model = model.double().eval()
    x = torch.randn(16, 3, 16, 16, dtype=torch.float64)
    y = torch.randint(0, 10, (16,))
    loss_fn = torch.nn.CrossEntropyLoss()
    on_cpu = hessian_trace(model, loss_fn, x, y, method="exact").value
    on_gpu = hessian_trace(model.cuda(), loss_fn, x.cuda(), y.cuda(), method="exact").value
    assert on_gpu == pytest.approx(on_cpu, rel=1e-9)
