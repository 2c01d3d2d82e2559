"""Statistics of every noise mode's draws against σ, and bitwise restoration of parameters."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from noisereg.errors import SettingError
from noisereg.models import MLP
from noisereg.noise import ActivationNoise, AllParamNoise, LabelNoise, LayerwiseNoise, NoiseInjectionNode


def small_mlp(bias: bool = True, activation: str = "relu", widths=(40, 30)) -> MLP:
    return MLP(20, 5, list(widths), activation=activation, bias=bias, generator=torch.Generator().manual_seed(0))


def snapshot(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def offsets_inside(noise, model, draws: int) -> list[list[torch.Tensor]]:
    """For each draw, the noise each parameter tensor carried inside `perturbed()`."""
    original = snapshot(model)
    result = []
    for _ in range(draws):
        with noise.perturbed():
            result.append([(p.detach() - o) for p, o in zip(model.parameters(), original)])
    return result


def assert_std_close(samples: torch.Tensor, expected: float, name: str) -> None:
    """Sample std within 5 standard errors of σ (s.e. of a Gaussian std estimate: σ/√(2n))."""
    n = samples.numel()
    std = samples.double().std().item()
    assert abs(std - expected) < 5 * expected / math.sqrt(2 * n), f"{name}: std {std:.5f} vs σ {expected:.5f} (n={n})"
    assert abs(samples.double().mean().item()) < 5 * expected / math.sqrt(n), f"{name}: mean not 0"


def test_gd_noise_gives_every_group_sigma_over_root_m():
    model = small_mlp()
    sigma = 0.3
    noise = AllParamNoise(model, sigma=sigma, seed=1)
    groups = len(list(model.parameters()))
    assert len(noise.groups) == groups == 6
    draws = offsets_inside(noise, model, 300)
    for index in range(groups):
        samples = torch.stack([draw[index] for draw in draws])
        assert (samples != 0).all(), "every parameter is perturbed at every step"
        assert_std_close(samples, sigma / math.sqrt(groups), f"group {index}")


def test_gd_noise_layer_groups_count_layers_not_tensors():
    model = small_mlp()
    noise = AllParamNoise(model, sigma=0.2, groups="layer", seed=0)
    assert len(noise.groups) == 3  # three Linear layers, weight + bias each
    assert noise.per_parameter_sigma == pytest.approx(0.2 / math.sqrt(3))


def test_layerwise_random_perturbs_exactly_one_group_uniformly():
    model = small_mlp()
    sigma, groups, draws = 0.5, 6, 3000
    noise = LayerwiseNoise(model, sigma=sigma, order="random", seed=3)
    offsets = offsets_inside(noise, model, draws)
    chosen = []
    for draw in offsets:
        perturbed = [i for i, offset in enumerate(draw) if (offset != 0).any()]
        assert len(perturbed) == 1, "layer-wise noise touches exactly one group per step"
        assert (draw[perturbed[0]] != 0).all()
        chosen.append(perturbed[0])
    counts = torch.bincount(torch.tensor(chosen), minlength=groups).double()
    expected = draws / groups
    binomial_se = math.sqrt(draws * (1 / groups) * (1 - 1 / groups))
    assert ((counts - expected).abs() < 4 * binomial_se).all(), f"group frequencies {counts.tolist()}"
    for index in range(groups):
        samples = torch.cat([offsets[d][index].flatten() for d in range(draws) if chosen[d] == index])
        assert_std_close(samples, sigma, f"group {index}")


def test_layerwise_cyclic_goes_through_groups_in_order():
    model = small_mlp()
    noise = LayerwiseNoise(model, sigma=0.1, order="cyclic", seed=0)
    chosen = []
    for draw in offsets_inside(noise, model, 13):
        chosen.append(next(i for i, offset in enumerate(draw) if (offset != 0).any()))
    assert chosen == [i % 6 for i in range(13)]


@pytest.mark.parametrize(
    "make_noise",
    [
        lambda m: AllParamNoise(m, sigma=0.7, seed=0),
        lambda m: LayerwiseNoise(m, sigma=0.7, seed=0),
        lambda m: LayerwiseNoise(m, sigma=0.7, groups="layer", order="cyclic", seed=0),
    ],
)
def test_parameters_are_restored_bitwise_even_after_an_error(make_noise):
    model = small_mlp()
    original = snapshot(model)
    noise = make_noise(model)
    for _ in range(20):
        with noise.perturbed():
            assert any(not torch.equal(p, o) for p, o in zip(model.parameters(), original))
            model(torch.randn(4, 20)).sum().backward()
        assert all(torch.equal(p, o) for p, o in zip(model.parameters(), original))
    with pytest.raises(RuntimeError):
        with noise.perturbed():
            raise RuntimeError("boom")
    assert all(torch.equal(p, o) for p, o in zip(model.parameters(), original))


def test_gradient_is_taken_at_the_perturbed_point():
    model = small_mlp()
    x, y = torch.randn(16, 20), torch.randn(16, 5)
    noise = LayerwiseNoise(model, sigma=0.5, seed=0)
    with noise.perturbed():
        perturbed_point = snapshot(model)
        nn.functional.mse_loss(model(x), y).backward()
    twin = small_mlp()
    with torch.no_grad():
        for p, value in zip(twin.parameters(), perturbed_point):
            p.copy_(value)
    nn.functional.mse_loss(twin(x), y).backward()
    for p, q in zip(model.parameters(), twin.parameters()):
        assert torch.equal(p.grad, q.grad)


def test_inactive_noise_does_nothing_and_schedule_switches_it_off():
    model = small_mlp()
    noise = LayerwiseNoise(model, sigma=1.0, seed=0, stop_epoch=3)
    noise.begin_step(step=10, epoch=2)
    assert noise.active
    noise.begin_step(step=11, epoch=3)
    assert not noise.active
    assert all((o == 0).all() for o in offsets_inside(noise, model, 1)[0])


@pytest.mark.parametrize(
    "bad",
    [
        lambda m: AllParamNoise(m, sigma=-1.0),
        lambda m: LayerwiseNoise(m, sigma=0.1, order="sideways"),
        lambda m: LayerwiseNoise(m, sigma=0.1, groups="neurons"),
        lambda m: LabelNoise(delta=-0.1),
        lambda m: LabelNoise(delta=0.1, anneal_steps=10),  # annealing needs the step δ reaches 0 at
        lambda m: LabelNoise(delta=0.1, anneal_steps=20, stop_step=10),
    ],
)
def test_bad_settings_name_the_setting(bad):
    with pytest.raises(SettingError, match=r"noise\."):
        bad(small_mlp())


# -- label noise --------------------------------------------------------------------------------------------------
def test_regression_label_noise_gaussian_moments():
    noise = LabelNoise(delta=0.3, distribution="gaussian", seed=0)
    y = torch.randn(20000, 1)
    offsets = noise.targets(None, y) - y
    assert_std_close(offsets, 0.3, "gaussian label noise")
    fresh = noise.targets(None, y) - y
    assert not torch.equal(offsets, fresh), "fresh noise at every step"


def test_regression_label_noise_rademacher_is_plus_minus_delta():
    noise = LabelNoise(delta=0.25, distribution="rademacher", seed=0)
    y = torch.zeros(20000, 1)
    offsets = noise.targets(None, y)
    assert set(offsets.unique().tolist()) == {-0.25, 0.25}
    assert abs(offsets.mean().item()) < 4 * 0.25 / math.sqrt(20000)


def test_classification_label_noise_flip_rate():
    classes, p, n = 10, 0.3, 50000
    noise = LabelNoise(flip_probability=p, num_classes=classes, seed=0)
    y = torch.randint(0, classes, (n,))
    noisy = noise.targets(None, y)
    assert noisy.dtype == torch.int64 and noisy.min() >= 0 and noisy.max() < classes
    # A replaced label is uniform over all classes, so it differs from the true one with probability p(1 − 1/C).
    changed = (noisy != y).double().mean().item()
    expected = p * (1 - 1 / classes)
    assert abs(changed - expected) < 4 * math.sqrt(expected * (1 - expected) / n)
    new_labels = torch.bincount(noisy[noisy != y], minlength=classes).double()
    assert (new_labels / new_labels.sum() - 1 / classes).abs().max() < 0.02


def test_label_noise_off_when_inactive():
    noise = LabelNoise(delta=1.0, seed=0, stop_step=1)
    noise.begin_step(step=1, epoch=0)
    y = torch.randn(10, 1)
    assert torch.equal(noise.targets(None, y), y)


def test_annealed_label_noise_follows_its_schedule_step_by_step_and_in_blocks():
    """noise.anneal_steps: δ_t = δ·min(1, (stop_step − t)/anneal_steps). The std of the drawn noise against δ_t,
    drawn one step at a time (the one-step loop) and for a block of steps in one call, one leading row per step
    (train/fused.py's blocks, the members')."""
    delta, stop, anneal = 0.4, 1000, 400
    schedule = lambda t: delta * min(1.0, (stop - t) / anneal)  # noqa: E731
    noise = LabelNoise(delta=delta, seed=0, stop_step=stop, anneal_steps=anneal)
    y = torch.zeros(20000, 1)
    for step in (0, 599, 600, 700, 900, 990):
        noise.begin_step(step, epoch=0)
        assert_std_close(noise.targets(None, y) - y, schedule(step), f"step {step}")
        assert noise.metrics() == {"noise/delta": pytest.approx(schedule(step))}
    noise.begin_step(stop, epoch=0)
    assert torch.equal(noise.targets(None, y), y) and noise.metrics() == {"noise/delta": 0.0}

    start, length, batch = 500, 500, 64  # a block across the start of annealing to its end
    noise.begin_step(start, epoch=0, steps=length)
    drawn = noise.targets(None, torch.zeros(length, batch, 1))
    expected = torch.tensor([schedule(start + k) for k in range(length)], dtype=torch.float64)
    for rows in torch.arange(length).split(50):  # 50 steps × 64 draws: their std against the rms of δ_t
        assert_std_close(drawn[rows], float(expected[rows].square().mean().sqrt()), f"block rows {rows[0]}..")
    assert_std_close(drawn.double() / expected.view(-1, 1, 1), 1.0, "block noise / δ_t")
    assert noise.metrics() == {"noise/delta": pytest.approx(schedule(start + length - 1))}, "the last step drawn"

    plain, annealed = (LabelNoise(delta=delta, seed=3, stop_step=stop, anneal_steps=a) for a in (0, anneal))
    for mode in (plain, annealed):
        mode.begin_step(0, epoch=0, steps=length)  # before annealing: the draws of a run without it
    block = torch.zeros(length, 1, 1)
    assert torch.equal(plain.targets(None, block), annealed.targets(None, block))


# -- noise injection node -----------------------------------------------------------------------------------------
def test_nin_adds_trainable_weights_and_vanishes_at_evaluation():
    model = small_mlp()
    x = torch.randn(4000, 20)
    model.eval()
    before = model(x)
    n_before = sum(p.numel() for p in model.parameters())
    noise = NoiseInjectionNode(sigma=2.0, layer=-1, seed=0)
    noise.attach(model)
    assert sum(p.numel() for p in model.parameters()) == n_before + 5  # W_NI on the 5 output preactivations
    assert any(name == "noise_injection_node.weight" for name, _ in model.named_parameters())
    assert torch.equal(model(x), before), "evaluation uses ε = 0"
    model.train()
    noise.begin_step(0, 0)
    difference = model(x) - before
    # On the output layer the change is exactly ε_i · W_NI: a rank-one matrix with ε_i ~ N(0, σ²).
    epsilon = difference[:, 0] / noise.node.weight[0]
    torch.testing.assert_close(difference, epsilon[:, None] * noise.node.weight.detach()[None, :], rtol=1e-4, atol=1e-5)
    assert_std_close(epsilon, 2.0, "ε of the injection node")


def test_nin_weights_are_trained_by_the_optimizer():
    model = small_mlp()
    noise = NoiseInjectionNode(sigma=1.0, layer=0, seed=0)
    noise.attach(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    start = noise.node.weight.detach().clone()
    noise.begin_step(0, 0)
    nn.functional.mse_loss(model(torch.randn(32, 20)), torch.randn(32, 5)).backward()
    optimizer.step()
    assert not torch.equal(noise.node.weight.detach(), start)
    assert "noise/nin_weight_norm" in noise.metrics()


def test_nin_fixed_resampling_keeps_one_epsilon_per_sample():
    model = small_mlp()
    noise = NoiseInjectionNode(sigma=1.0, layer=-1, resample="fixed", n_train=100, seed=0)
    noise.attach(model)
    x = torch.randn(100, 20)
    model.eval()
    clean = model(x)
    model.train()
    indices = torch.tensor([3, 7, 42])
    noise.begin_step(0, 0, indices)
    first = model(x[indices]) - clean[indices]
    noise.begin_step(1, 0, indices)
    second = model(x[indices]) - clean[indices]
    torch.testing.assert_close(first, second)
    expected = noise.epsilon_table[indices][:, None] * noise.node.weight.detach()[None, :]
    torch.testing.assert_close(first, expected)


# -- Gaussian noise on activations --------------------------------------------------------------------------------
def capture_activations(model: MLP) -> list[list[torch.Tensor]]:
    captured: list[list[torch.Tensor]] = [[] for _ in model.activations]
    for store, module in zip(captured, model.activations):
        module.register_forward_hook(lambda m, i, out, store=store: store.append(out.detach()))
    return captured


@pytest.mark.parametrize("kind", ["additive", "multiplicative"])
def test_gni_noises_every_hidden_layer_with_its_sigma_and_is_off_at_evaluation(kind):
    model = small_mlp(activation="linear", widths=(200, 300))
    sigmas = [0.1, 0.4]
    noise = ActivationNoise(sigma=sigmas, kind=kind, seed=0, noise_input=False)  # the input: tests/test_camuto.py
    x = torch.randn(500, 20)
    model.eval()
    clean_output = model(x)
    noise.attach(model)
    captured = capture_activations(model)  # registered after GNI's hooks, so it sees the noisy activations
    assert torch.equal(model(x), clean_output), "GNI is off at evaluation"
    clean = [c[-1] for c in captured]
    model.train()
    noisy_output = model(x)
    assert not torch.equal(noisy_output, clean_output)
    # The first layer's clean activation is the same in train mode; its noise is the difference.
    first_noise = captured[0][-1] - clean[0]
    if kind == "multiplicative":
        first_noise = first_noise / clean[0]
    assert_std_close(first_noise, sigmas[0], "layer 1")
    # The second layer's noise: recompute its clean value from the noisy first layer.
    clean_second = model.layers[1](captured[0][-1])
    second_noise = captured[1][-1] - clean_second
    if kind == "multiplicative":
        second_noise = second_noise / clean_second
    assert_std_close(second_noise, sigmas[1], "layer 2")
    # Never on the output: the output is exactly the last layer applied to the noisy last hidden activation.
    torch.testing.assert_close(noisy_output, model.layers[-1](captured[1][-1]))


def test_gni_sigma_list_must_match_the_noised_layers():
    with pytest.raises(SettingError, match="3 noised layers"):  # the input and two hidden layers
        ActivationNoise(sigma=[0.1, 0.2]).attach(small_mlp())
    with pytest.raises(SettingError, match="2 noised layers"):
        ActivationNoise(sigma=[0.1, 0.2, 0.3], noise_input=False).attach(small_mlp())


def test_large_tensors_are_drawn_in_parallel_chunks_independent_of_the_thread_count():
    from noisereg.noise.random_streams import CHUNKS, PARALLEL_MIN_ELEMENTS, RandomStreams

    size = 4 * PARALLEL_MIN_ELEMENTS
    threads = torch.get_num_threads()
    draws = []
    try:
        for count in (1, 2):
            torch.set_num_threads(count)
            draws.append(RandomStreams(seed=11).normal_(torch.empty(size), 0.2))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(draws[0], draws[1]), "the same seed gives the same noise on 1 or 2 threads"
    assert_std_close(draws[0], 0.2, "parallel draw")
    chunks = draws[0].chunk(CHUNKS)
    assert not torch.equal(chunks[0][:1000], chunks[1][:1000]), "each chunk has its own generator"
    correlation = torch.corrcoef(torch.stack([chunks[0][:100000], chunks[1][:100000]]))[0, 1]
    assert abs(correlation) < 4 / math.sqrt(100000)
    assert not torch.equal(RandomStreams(seed=12).normal_(torch.empty(size), 0.2), draws[0])
