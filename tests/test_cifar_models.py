"""The CIFAR-10 models: parameter counts of the paper's networks, the exact Hessian trace against dense float64
Hessians on small instances of the same classes, and every noise mode finding its sites in each of them."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import compose
from test_curvature import dense_hessian, randomise_batchnorm
from torch import nn

from noisereg.app import run
from noisereg.curvature import hessian_trace
from noisereg.models import ResNet, ToyCNN, WideCNN, build_model, hidden_activation_modules, preactivation_modules
from noisereg.noise import ActivationNoise, AllParamNoise, NoiseInjectionNode
from noisereg.tracking import read_metrics


@pytest.fixture(autouse=True)
def one_thread():
    """These models are tiny: one thread is as fast, and far faster when other processes share the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def count(model: nn.Module) -> tuple[int, int]:
    return sum(p.numel() for p in model.parameters()), len(list(model.parameters()))


def test_the_papers_networks_have_their_parameter_counts():
    assert count(build_model("toy_cnn", (3, 32, 32), 10)) == (62_006, 10)  # Eq. 52
    assert count(build_model("wide_cnn", (3, 32, 32), 10)) == (242_122, 10)  # Eq. 53, padding 1
    assert count(build_model("wide_cnn", (3, 32, 32), 10, widths=[32, 128, 128, 128]))[0] == 334_346  # authors' code
    resnet = build_model("resnet18", (3, 32, 32), 10)
    assert count(resnet) == (11_173_962, 62), "kuangliu's ResNet18: BatchNorm's γ and β are 40 of the 62 groups"
    assert len(hidden_activation_modules(resnet)) == 17 and len(preactivation_modules(resnet)) == 18
    assert len({id(m) for m in hidden_activation_modules(resnet)}) == 17, "one ReLU module per site"
    assert resnet(torch.randn(2, 3, 32, 32)).shape == (2, 10)


SMALL = {  # the same classes at sizes a dense float64 Hessian can take
    "toy_cnn": (lambda g: ToyCNN((3, 16, 16), 10, [2, 3, 4, 3], g), (3, 16, 16)),
    "wide_cnn": (lambda g: WideCNN((3, 8, 8), 10, [2, 3, 3], g), (3, 8, 8)),
    "resnet18": (lambda g: ResNet((3, 8, 8), 10, [2, 3], [2, 1], g), (3, 8, 8)),
}


@pytest.mark.parametrize("name", list(SMALL))
def test_exact_trace_matches_a_dense_float64_hessian(name):
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        build, shape = SMALL[name]
        generator = torch.Generator().manual_seed(0)
        model = randomise_batchnorm(build(generator)).eval()  # residual blocks with BatchNorm's running statistics
        inputs, targets = torch.randn(5, *shape, generator=generator), torch.randint(0, 10, (5,), generator=generator)
        loss_fn = nn.CrossEntropyLoss()
        hessian, blocks = dense_hessian(model, loss_fn, inputs, targets)
        estimate = hessian_trace(model, loss_fn, inputs, targets, method="exact")
        assert math.isclose(estimate.value, hessian.diagonal().sum().item(), rel_tol=1e-8)
        for parameter, rows in blocks:  # every tensor's block, BatchNorm's γ and β and the shortcuts included
            assert math.isclose(
                estimate.per_group[parameter], hessian[rows, rows].diagonal().sum().item(), rel_tol=1e-7, abs_tol=1e-12
            ), parameter
    finally:
        torch.set_default_dtype(previous)


def test_activation_noise_and_noise_nodes_reach_every_site_of_a_resnet():
    model = build_model("resnet18", (3, 8, 8), 10, torch.Generator().manual_seed(0), widths=[2, 3], blocks=[2, 1])
    sites = hidden_activation_modules(model)
    assert len(sites) == 7  # the stem's ReLU and two per block
    gni = ActivationNoise(sigma=[0.0] * (len(sites) - 1) + [1.0], seed=0, noise_input=False)  # the last site only
    gni.attach(model)
    seen: list[torch.Tensor] = []
    for site in sites:  # registered after GNI's hooks: they see what the next layer sees
        site.register_forward_hook(lambda module, args, output: seen.append(output.detach().clone()))
    x = torch.randn(4, 3, 8, 8)

    def site_outputs() -> list[torch.Tensor]:
        seen.clear()
        model(x)  # train mode: batch statistics, so the outputs depend on x and the noise only
        return list(seen)

    gni.active = False
    plain = site_outputs()
    gni.active = True
    noisy = site_outputs()
    assert all(torch.equal(a, b) for a, b in zip(plain[:-1], noisy[:-1])) and not torch.equal(plain[-1], noisy[-1])
    gni.active = False
    nin = NoiseInjectionNode(sigma=1.0, layer=-2, seed=0)  # the last block's second BatchNorm (3 channels)
    nin.attach(model)
    assert nin.node.weight.shape == (3,)
    with torch.no_grad():
        nin.node.weight.fill_(1.0)
    injected = site_outputs()
    assert all(torch.equal(a, b) for a, b in zip(plain[:-1], injected[:-1]))
    assert not torch.equal(plain[-1], injected[-1])


@pytest.mark.parametrize("model", ["toy_cnn", "wide_cnn", "resnet18"])
def test_every_noise_mode_trains_every_model_with_its_regularizer_and_the_exact_trace(model, cifar10_root, tmp_path):
    widths = {"toy_cnn": "[2,3,8,6]", "wide_cnn": "[3,4,5,5]", "resnet18": "[3,4,4,5]"}[model]
    expected = {
        "gd_noise": "reg/orvieto",
        "layerwise": "reg/orvieto",
        "gni": "reg/camuto",
        "label_noise": "reg/blanc",
        "nin": "noise/nin_weight_norm",
        "gd": "hessian/trace",
    }
    for noise, regularizer in expected.items():
        cfg = compose(
            "dataset=cifar10",
            f"dataset.root={cifar10_root}",
            "dataset.n_train=48",
            "dataset.n_test=16",
            f"model={model}",
            f"model.widths={widths}",
            f"noise={noise}",
            "trainer.loss=cross_entropy",
            "trainer.steps=3",
            "trainer.batch_size=16",
            "curvature.every=3",
            "curvature.method=exact",
            "logger.mode=disabled",
            "trainer.progress_bar=false",
        )
        summary = run(cfg, tmp_path / noise)
        assert summary["status"] == "completed", (noise, summary.get("reason"))
        final = read_metrics(tmp_path / noise)[-1]
        assert final["step"] == 3 and regularizer in final and final["hessian/trace"] > 0, noise


def test_parameter_noise_on_channels_last_weights_is_drawn_and_restored_bitwise():
    model = build_model("resnet18", (3, 8, 8), 10, torch.Generator().manual_seed(0), widths=[8, 16])
    model = model.to(memory_format=torch.channels_last)
    before = [p.detach().clone() for p in model.parameters()]
    noise = AllParamNoise(model, sigma=0.5, seed=1)
    expected_std = 0.5 / math.sqrt(len(before))
    for _ in range(2):  # the second step reuses the first one's buffers
        with noise.perturbed():
            deltas = torch.cat([(p - b).flatten() for p, b in zip(model.parameters(), before)])
            assert abs(deltas.std().item() / expected_std - 1) < 0.03
            assert abs(deltas.mean().item()) < 5 * expected_std / math.sqrt(deltas.numel())
        assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert next(model.parameters()).is_contiguous(memory_format=torch.channels_last)


def test_bf16_autocast_and_channels_last_run_on_the_cpu_close_to_float32(cifar10_root, tmp_path):
    """The GPU defaults, forced on the CPU: same run, bf16 forward passes stay close to float32; channels-last
    alone changes only the layout (float32 rounding). Plain SGD: parameter noise is drawn in each tensor's memory
    order, so its values would differ between layouts."""
    base = [
        "dataset=cifar10",
        f"dataset.root={cifar10_root}",
        "dataset.n_train=64",
        "dataset.n_test=32",
        "model=toy_cnn",
        "noise=gd",
        "trainer.loss=cross_entropy",
        "trainer.steps=4",
        "trainer.batch_size=16",
        "trainer.optimizer.lr=0.01",
        "logger.mode=disabled",
        "trainer.progress_bar=false",
    ]
    finals = {}
    for name, options in {
        "float32": [],
        "bf16": ["trainer.precision=bfloat16"],
        "channels_last": ["trainer.channels_last=true"],
    }.items():
        assert run(compose(*base, *options), tmp_path / name)["status"] == "completed"
        finals[name] = read_metrics(tmp_path / name)[-1]
    for key in ("train/loss", "test/loss", "params/l2_norm"):
        assert finals["bf16"][key] != finals["float32"][key], "autocast ran"
        assert finals["bf16"][key] == pytest.approx(finals["float32"][key], rel=2e-2)
        assert finals["channels_last"][key] == pytest.approx(finals["float32"][key], rel=1e-5)
