"""noisereg.curvature against dense float64 references: Hessians by torch.func.hessian, Jacobians by
torch.autograd.functional.jacobian, closed forms by Monte Carlo."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

from noisereg.curvature import (
    TraceEstimate,
    activation_gauss_newton_trace,
    camuto_regularizer,
    deep_linear_layerwise_noise,
    diagonal_network_regularizer,
    gauss_newton_trace,
    hessian_trace,
    one_hidden_layer_all_parameter_noise,
    one_hidden_layer_layerwise_noise,
    one_hidden_layer_regularized_minimum,
    orvieto_regularizer,
    output_gradient_norm_squared,
)
from noisereg.curvature.gauss_newton import (
    _ggn_torch_func,
    evaluation_mode,
    loss_hessian_factor_fn,
    trainable_parameters,
)
from noisereg.losses import HalfMSELoss

CLASSES = 3
N = 6
# torch.func's forward-mode AD (the dense Hessians below) loads decompositions through torch.jit.script.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")


@pytest.fixture(autouse=True)
def float64_by_default():
    """Every model and tensor in these tests is float64; other test modules keep their default."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


# ------------------------------------------------------------------------------------------------ small models


class ResidualBlock(nn.Module):
    """conv-BN-ReLU-conv-BN + 1×1-conv shortcut, ReLU, global average pool, linear head (a ResNet in miniature)."""

    piecewise_linear_in_parameters = True

    def __init__(self, bias: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1, bias=bias)
        self.bn1 = nn.BatchNorm2d(3)
        self.relu = nn.ReLU(inplace=True)  # in-place after BN: the exact method must not differentiate the ReLU
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1, bias=bias)
        self.bn2 = nn.BatchNorm2d(3)
        self.shortcut = nn.Conv2d(2, 3, 1, stride=1, bias=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(3, CLASSES, bias=bias)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.relu(out + self.shortcut(x))
        return self.head(self.pool(out).flatten(1))


def randomise_batchnorm(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            with torch.no_grad():
                module.weight.normal_()
                module.bias.normal_()
    return model


def mlp(bias=True, activation=nn.ReLU):
    return nn.Sequential(
        nn.Linear(4, 5, bias=bias),
        activation(),
        nn.Linear(5, 4, bias=bias),
        activation(),
        nn.Linear(4, CLASSES, bias=bias),
    )


def cnn(bias=True):
    return nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, bias=bias),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=bias),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(4, CLASSES, bias=bias),
    )


def cnn1d(bias=True):
    return nn.Sequential(
        nn.Conv1d(2, 3, 3, padding=1, bias=bias),
        nn.ReLU(),
        nn.MaxPool1d(2),
        nn.Flatten(),
        nn.Linear(9, CLASSES, bias=bias),
    )


def token_mlp(bias=True):
    """A Linear applied to every position of a (n, T, d) input: per-sample gradients sum over positions."""
    return nn.Sequential(nn.Linear(4, 3, bias=bias), nn.ReLU(), nn.Flatten(), nn.Linear(15, CLASSES, bias=bias))


MODELS = {
    "mlp": (mlp, (4,)),
    "cnn": (cnn, (2, 8, 8)),
    "cnn1d": (cnn1d, (2, 6)),
    "token_mlp": (token_mlp, (5, 4)),
    "resblock": (ResidualBlock, (2, 5, 5)),
}
LOSSES = {"cross_entropy": nn.CrossEntropyLoss, "mse": nn.MSELoss, "half_mse": HalfMSELoss}


def make_problem(model_name, loss_name, bias=True, seed=0, n=N):
    torch.manual_seed(seed)
    build, input_shape = MODELS[model_name]
    model = randomise_batchnorm(build(bias=bias)).eval()
    inputs = torch.randn(n, *input_shape)
    if loss_name == "cross_entropy":
        targets = torch.randint(0, CLASSES, (n,))
    else:
        targets = torch.randn(n, CLASSES)
    return model, LOSSES[loss_name](), inputs, targets


# ------------------------------------------------------------------------------------------------ dense references


def dense_hessian(model, loss_fn, inputs, targets):
    """(Hessian of the loss w.r.t. the flat trainable parameter vector, [(name, slice)]) in eval mode."""
    parameters = trainable_parameters(model)
    names = list(parameters)
    sizes = [p.numel() for p in parameters.values()]
    flat = torch.cat([p.detach().reshape(-1) for p in parameters.values()])

    def loss_of(vector):
        pieces = vector.split(sizes)
        params = {name: piece.view_as(parameters[name]) for name, piece in zip(names, pieces)}
        return loss_fn(functional_call(model, params, (inputs,)), targets)

    with evaluation_mode(model):
        hessian = torch.func.hessian(loss_of)(flat)
    offsets = [0, *torch.tensor(sizes).cumsum(0).tolist()]
    return hessian, [(name, slice(a, b)) for name, a, b in zip(names, offsets[:-1], offsets[1:])]


def dense_trace(model, loss_fn, inputs, targets):
    hessian, _ = dense_hessian(model, loss_fn, inputs, targets)
    return hessian.diagonal().sum().item()


def relative_error(value, reference):
    return abs(value - reference) / abs(reference)


# ------------------------------------------------------------------------------------------------ exact method


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("loss_name", list(LOSSES))
@pytest.mark.parametrize("model_name", list(MODELS))
def test_exact_trace_and_blocks_match_dense_hessian(model_name, loss_name, bias):
    model, loss_fn, inputs, targets = make_problem(model_name, loss_name, bias)
    hessian, blocks = dense_hessian(model, loss_fn, inputs, targets)
    estimate = hessian_trace(model, loss_fn, inputs, targets, method="exact")
    assert estimate.method == "exact" and estimate.stderr == 0.0
    assert relative_error(estimate.value, hessian.diagonal().sum().item()) <= 1e-8
    assert set(estimate.per_group) == {name for name, _ in blocks}
    for name, rows in blocks:
        block_trace = hessian[rows, rows].diagonal().sum().item()
        assert abs(estimate.per_group[name] - block_trace) <= 1e-8 * abs(estimate.value), name
    assert math.isclose(sum(estimate.per_group.values()), estimate.value, rel_tol=1e-12)


def test_exact_detects_a_wrong_trace():
    """The comparison above can fail: a ReLU net's trace differs from a tanh net's with the same weights."""
    model, loss_fn, inputs, targets = make_problem("mlp", "cross_entropy")
    tanh_model = mlp(activation=nn.Tanh)
    tanh_model.load_state_dict(model.state_dict())
    assert (
        relative_error(
            hessian_trace(model, loss_fn, inputs, targets, method="exact").value,
            dense_trace(tanh_model, loss_fn, inputs, targets),
        )
        > 1e-3
    )


def test_exact_generic_torch_func_path_matches_per_layer_path():
    model, loss_fn, inputs, targets = make_problem("resblock", "cross_entropy")
    layerwise = hessian_trace(model, loss_fn, inputs, targets, method="exact").per_group
    with evaluation_mode(model):
        factor_fn = loss_hessian_factor_fn(loss_fn, targets)
        generic, _ = _ggn_torch_func(model, trainable_parameters(model), inputs, factor_fn, chunk_size=4)
    for name, value in layerwise.items():
        assert math.isclose(generic[name], value, rel_tol=1e-9, abs_tol=1e-12), name


def test_exact_with_prelu_uses_generic_path_and_matches_dense():
    model, loss_fn, inputs, targets = make_problem("mlp", "cross_entropy")
    model[1] = nn.PReLU(init=0.3)  # piecewise linear, but its parameter is not a Linear/Conv/BN one
    estimate = hessian_trace(model, loss_fn, inputs, targets, method="exact")
    assert relative_error(estimate.value, dense_trace(model, loss_fn, inputs, targets)) <= 1e-8


class FlattenedPositions(nn.Module):
    """A Linear applied to (n·T, d): its first dimension is not the sample dimension."""

    piecewise_linear_in_parameters = True

    def __init__(self):
        super().__init__()
        self.mix, self.head = nn.Linear(4, 3), nn.Linear(15, CLASSES)

    def forward(self, x):
        n = x.shape[0]
        return self.head(torch.relu(self.mix(x.reshape(-1, 4))).reshape(n, -1))


def test_layers_the_per_layer_path_cannot_handle_fall_back_to_torch_func():
    model, loss_fn, inputs, targets = make_problem("token_mlp", "cross_entropy")
    flattened = FlattenedPositions()
    estimate = hessian_trace(flattened, loss_fn, inputs, targets, method="exact")
    assert relative_error(estimate.value, dense_trace(flattened, loss_fn, inputs, targets)) <= 1e-8
    twice = Twice()  # a weight used twice: not piecewise linear, but the Gauss–Newton trace is still defined
    regression_targets = torch.randn(N, 4)
    ggn = gauss_newton_trace(twice, HalfMSELoss(), inputs[:, 0], regression_targets)
    reference = dense_ggn_trace(twice, HalfMSELoss(), inputs[:, 0], regression_targets)
    assert relative_error(ggn.value, reference) <= 1e-8


def test_exact_is_independent_of_chunk_size_and_frozen_parameters_are_left_out():
    model, loss_fn, inputs, targets = make_problem("cnn", "cross_entropy", n=7)
    whole = hessian_trace(model, loss_fn, inputs, targets, method="exact", chunk_size=7)
    chunked = hessian_trace(model, loss_fn, inputs, targets, method="exact", chunk_size=3)
    assert math.isclose(whole.value, chunked.value, rel_tol=1e-12)
    assert chunked.matvecs == 3 * CLASSES  # one backward pass per column of A per chunk
    model[0].weight.requires_grad_(False)
    frozen = hessian_trace(model, loss_fn, inputs, targets, method="exact")
    assert "0.weight" not in frozen.per_group
    assert relative_error(frozen.value, dense_trace(model, loss_fn, inputs, targets)) <= 1e-8


def test_cross_entropy_options_weights_and_ignore_index():
    model, _, inputs, targets = make_problem("mlp", "cross_entropy")
    targets[1] = -100
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor([0.5, 2.0, 1.0]))
    estimate = hessian_trace(model, loss_fn, inputs, targets, method="exact")
    assert relative_error(estimate.value, dense_trace(model, loss_fn, inputs, targets)) <= 1e-8
    soft = torch.softmax(torch.randn(N, CLASSES), dim=1)
    for loss_fn in (nn.CrossEntropyLoss(reduction="sum"), nn.CrossEntropyLoss(label_smoothing=0.1)):
        estimate = hessian_trace(model, loss_fn, inputs, soft, method="exact")
        assert relative_error(estimate.value, dense_trace(model, loss_fn, inputs, soft)) <= 1e-8


def test_batchnorm_in_train_mode_is_measured_in_eval_mode():
    model, loss_fn, inputs, targets = make_problem("resblock", "cross_entropy")
    reference = dense_trace(model, loss_fn, inputs, targets)  # eval mode
    running_mean = model.bn1.running_mean.clone()
    model.train()
    estimate = hessian_trace(model, loss_fn, inputs, targets, method="exact")
    assert relative_error(estimate.value, reference) <= 1e-8
    assert model.training and model.bn1.training
    assert torch.equal(model.bn1.running_mean, running_mean)


# ------------------------------------------------------------------------------------------------ refusals, auto


def test_exact_refuses_tanh_naming_the_module_and_suggesting_hutchinson():
    model, loss_fn, inputs, targets = make_problem("mlp", "cross_entropy")
    model[1] = nn.Tanh()
    with pytest.raises(ValueError, match=r"module '1' \(Tanh\) is not.*method='hutchinson'"):
        hessian_trace(model, loss_fn, inputs, targets, method="exact")


class Factorized(nn.Module):
    """f(x) = x U Uᵀ: U enters quadratically; the module says so."""

    piecewise_linear_in_parameters = False

    def __init__(self):
        super().__init__()
        self.U = nn.Parameter(torch.randn(4, 2))

    def forward(self, x):
        return x @ self.U @ self.U.T


class Undeclared(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, CLASSES)

    def forward(self, x):
        return self.layer(x)


class Twice(nn.Module):
    piecewise_linear_in_parameters = True

    def __init__(self):
        super().__init__()
        self.layer = nn.Linear(4, 4)

    def forward(self, x):
        return self.layer(torch.relu(self.layer(x)))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (Factorized, r"\(Factorized\) declares piecewise_linear_in_parameters = False"),
        (Undeclared, r"\(Undeclared\) is not\. If its forward is piecewise linear.*= True"),
        (Twice, r"module 'layer' runs 2 times per forward"),
        (lambda: nn.Sequential(nn.Linear(4, 4), nn.ELU(), nn.Linear(4, 4)), r"module '1' \(ELU\)"),
        (lambda: nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4, track_running_stats=False)), r"batch statistics"),
    ],
)
def test_exact_refuses_models_it_cannot_vouch_for(build, message):
    model = build()
    inputs, targets = torch.randn(N, 4), torch.randn(N, 4 if not isinstance(model, Undeclared) else CLASSES)
    with pytest.raises(ValueError, match=message):
        hessian_trace(model, HalfMSELoss(), inputs, targets, method="exact")
    assert hessian_trace(model, HalfMSELoss(), inputs, targets, method="auto", probes=3).method == "hutchinson"


def test_exact_refuses_shared_parameters_and_unknown_losses():
    shared = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4))
    shared[2].weight = shared[0].weight
    inputs, targets = torch.randn(N, 4), torch.randn(N, 4)
    with pytest.raises(ValueError, match="are the same tensor"):
        hessian_trace(shared, HalfMSELoss(), inputs, targets, method="exact")
    with pytest.raises(ValueError, match=r"not HuberLoss; use method='hutchinson'"):
        hessian_trace(mlp(), nn.HuberLoss(), inputs, targets[:, :CLASSES], method="exact")
    huber = hessian_trace(mlp(), nn.HuberLoss(), inputs, targets[:, :CLASSES], method="auto", probes=5)
    assert huber.method == "hutchinson" and math.isfinite(huber.value)


def test_auto_picks_exact_for_relu_and_hutchinson_for_tanh():
    model, loss_fn, inputs, targets = make_problem("mlp", "cross_entropy")
    assert hessian_trace(model, loss_fn, inputs, targets).method == "exact"
    model[1] = nn.Tanh()
    estimate = hessian_trace(model, loss_fn, inputs, targets, probes=10, chunk_size=2)
    assert estimate.method == "hutchinson" and estimate.matvecs == 10


def test_unknown_method_and_options_are_rejected():
    model, loss_fn, inputs, targets = make_problem("mlp", "cross_entropy")
    with pytest.raises(ValueError, match="method='lanczos' is unknown"):
        hessian_trace(model, loss_fn, inputs, targets, method="lanczos")
    with pytest.raises(TypeError, match=r"unknown options \['probes'\]"):
        hessian_trace(model, loss_fn, inputs, targets, method="exact", probes=5)


# ------------------------------------------------------------------------------------------------ Monte Carlo


def test_hutchinson_is_unbiased_and_its_stderr_matches_the_spread():
    model, loss_fn, inputs, targets = make_problem("mlp", "cross_entropy")
    model[1] = nn.Tanh()  # a model the exact method refuses; the reference is the dense Hessian
    exact = dense_trace(model, loss_fn, inputs, targets)
    estimates = [
        hessian_trace(model, loss_fn, inputs, targets, method="hutchinson", probes=20, seed=seed) for seed in range(60)
    ]
    values = torch.tensor([e.value for e in estimates])
    assert all(e.matvecs == 20 and e.method == "hutchinson" for e in estimates)
    pooled_stderr = values.std().item() / math.sqrt(len(values))
    assert abs(values.mean().item() - exact) <= 4 * pooled_stderr
    mean_reported = sum(e.stderr for e in estimates) / len(estimates)
    # Reported stderr against the observed spread of independent estimates (measured ratio 1.02; a stderr
    # computed as std/probes**0.4 instead of std/√probes gives 1.37 and fails).
    assert 0.8 <= mean_reported / values.std().item() <= 1.25
    again = hessian_trace(model, loss_fn, inputs, targets, method="hutchinson", probes=20, seed=3)
    assert again.value == estimates[3].value  # seeded


def test_hutchinson_batched_probes():
    model, loss_fn, inputs, targets = make_problem("cnn", "half_mse")
    exact = hessian_trace(model, loss_fn, inputs, targets, method="exact").value
    batched = hessian_trace(model, loss_fn, inputs, targets, method="hutchinson", probes=203, probes_per_batch=8)
    assert batched.matvecs == 203 and len(batched.samples) == 203
    assert abs(batched.value - exact) <= 4 * batched.stderr
    generator = torch.Generator().manual_seed(5)
    with_generator = hessian_trace(model, loss_fn, inputs, targets, method="hutchinson", probes=4, generator=generator)
    assert with_generator.matvecs == 4


def test_hutchpp_is_exact_with_a_full_sketch_and_close_with_a_small_one():
    model, loss_fn, inputs, targets = make_problem("mlp", "half_mse")
    exact = dense_trace(model, loss_fn, inputs, targets)
    dimension = sum(p.numel() for p in model.parameters())
    full = hessian_trace(model, loss_fn, inputs, targets, method="hutchpp", matvecs=3 * dimension)
    assert full.matvecs == 3 * dimension
    assert relative_error(full.value, exact) <= 1e-8  # the sketch spans everything: no residual left
    small = hessian_trace(model, loss_fn, inputs, targets, method="hutchpp", matvecs=30, seed=1)
    assert small.matvecs == 30
    assert hessian_trace(model, loss_fn, inputs, targets, method="hutchpp", probes=30, seed=1).value == small.value
    assert abs(small.value - exact) <= 5 * small.stderr + 1e-9


def test_pyhessian_method_is_near_exact_and_restores_the_model():
    pytest.importorskip("pyhessian")
    model, loss_fn, inputs, targets = make_problem("mlp", "cross_entropy")
    exact = hessian_trace(model, loss_fn, inputs, targets, method="exact").value
    model.train()
    estimate = hessian_trace(model, loss_fn, inputs, targets, method="pyhessian", probes=200)
    assert estimate.matvecs == 200 and estimate.method == "pyhessian"
    assert abs(estimate.value - exact) <= 5 * estimate.stderr
    assert all(module.training for module in model.modules())
    assert all(p.grad is None for p in model.parameters())


def pyhessian_mlp(seed: int):
    """Orvieto's MLP shape (784-50³-10 ReLU) on 32 random images, where PyHessian's own trace() stops early; in
    float32, as trained (this module's fixture sets float64 and restores the default after each test)."""
    torch.set_default_dtype(torch.float32)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 50),
        nn.ReLU(),
        nn.Linear(50, 50),
        nn.ReLU(),
        nn.Linear(50, 50),
        nn.ReLU(),
        nn.Linear(50, 10),
    )
    return model, nn.CrossEntropyLoss(), torch.randn(32, 1, 28, 28), torch.randint(0, 10, (32,))


def pyhessians_own_trace(model, loss_fn, inputs, targets, seed: int) -> list[float]:
    from pyhessian import hessian

    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(seed)
        model.eval()
        samples = hessian(model, loss_fn, data=(inputs, targets), cuda=False).trace(maxIter=200, tol=-1.0)
    model.zero_grad(set_to_none=True)
    return samples


def test_pyhessian_method_uses_every_probe_where_pyhessians_trace_stops_early():
    """PyHessian 0.1's trace() stops once its running mean moves by less than tol relative to that mean, which a
    negative mean always does (even tol < 0): here after 7 of 200 probes, at a negative trace. The method runs all
    200 on PyHessian's Hessian-vector product and lands within 4 standard errors of the exact trace; where trace()
    does run all its probes, the two agree probe for probe (the same draws)."""
    pytest.importorskip("pyhessian")
    model, loss_fn, inputs, targets = pyhessian_mlp(0)
    exact = hessian_trace(model, loss_fn, inputs, targets, method="exact").value
    own = pyhessians_own_trace(model, loss_fn, inputs, targets, seed=0)
    assert len(own) < 200 and sum(own) / len(own) < 0 < exact  # the fault, on this model
    estimate = hessian_trace(model, loss_fn, inputs, targets, method="pyhessian", probes=200, seed=0)
    assert estimate.matvecs == len(estimate.samples) == 200
    assert abs(estimate.value - exact) <= 4 * estimate.stderr

    model, loss_fn, inputs, targets = pyhessian_mlp(2)
    own = pyhessians_own_trace(model, loss_fn, inputs, targets, seed=2)
    assert len(own) == 200
    estimate = hessian_trace(model, loss_fn, inputs, targets, method="pyhessian", probes=200, seed=2)
    np.testing.assert_allclose(estimate.samples, own, rtol=1e-6)


# ------------------------------------------------------------------------------------------------ model state


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("exact", {}),
        ("auto", {}),
        ("hutchinson", {"probes": 3, "probes_per_batch": 2}),
        ("hutchpp", {"matvecs": 6}),
        ("pyhessian", {"probes": 3}),
    ],
)
def test_every_method_leaves_modes_parameters_and_grads_as_found(method, options):
    if method == "pyhessian":
        pytest.importorskip("pyhessian")
    model, loss_fn, inputs, targets = make_problem("resblock", "cross_entropy")
    model.train()
    model.bn2.eval()
    model.head.eval()
    modes = [module.training for module in model.modules()]
    parameters = [p.detach().clone() for p in model.parameters()]
    model.conv1.weight.grad = torch.randn_like(model.conv1.weight)
    model.head.bias.grad = torch.randn_like(model.head.bias)
    grads = [p.grad for p in model.parameters()]
    grad_values = [None if g is None else g.clone() for g in grads]
    buffers = [b.clone() for b in model.buffers()]

    hessian_trace(model, loss_fn, inputs, targets, method=method, **options)
    gauss_newton_trace(model, loss_fn, inputs, targets)

    assert [module.training for module in model.modules()] == modes
    assert all(torch.equal(p, before) for p, before in zip(model.parameters(), parameters))
    assert all(b1 is not None and torch.equal(b1, b2) for b1, b2 in zip(model.buffers(), buffers))
    for p, grad, value in zip(model.parameters(), grads, grad_values):
        assert p.grad is grad
        assert value is None or torch.equal(p.grad, value)


# ------------------------------------------------------------------------------------------------ regularizers


def dense_ggn_trace(model, loss_fn, inputs, targets):
    """tr(Jᵀ H_L J) from the dense Jacobian of all outputs w.r.t. the flat parameters."""
    parameters = trainable_parameters(model)
    sizes = [p.numel() for p in parameters.values()]
    flat = torch.cat([p.detach().reshape(-1) for p in parameters.values()])

    def outputs_of(vector):
        params = {name: piece.view_as(p) for (name, p), piece in zip(parameters.items(), vector.split(sizes))}
        return functional_call(model, params, (inputs,)).reshape(-1)

    with evaluation_mode(model):
        outputs = model(inputs)
        jacobian = torch.func.jacrev(outputs_of)(flat)
    output_hessian = torch.func.hessian(lambda out: loss_fn(out.view_as(outputs), targets))(outputs.reshape(-1))
    return torch.trace(jacobian.T @ output_hessian @ jacobian).item()


def test_gauss_newton_trace_of_a_tanh_net_matches_dense_and_groups_sum():
    model, loss_fn, inputs, targets = make_problem("mlp", "cross_entropy")
    model[1], model[3] = nn.Tanh(), nn.Tanh()
    estimate = gauss_newton_trace(model, loss_fn, inputs, targets)
    reference = dense_ggn_trace(model, loss_fn, inputs, targets)
    assert relative_error(estimate.value, reference) <= 1e-8
    assert relative_error(estimate.value, dense_trace(model, loss_fn, inputs, targets)) > 1e-4  # tanh: GGN ≠ H
    grouped = gauss_newton_trace(model, loss_fn, inputs, targets, groups=[["0.weight", "0.bias"], ["4.weight"]])
    assert set(grouped.per_group) == {"group0", "group1"}
    assert math.isclose(grouped.per_group["group0"], estimate.per_group["0.weight"] + estimate.per_group["0.bias"])
    assert math.isclose(orvieto_regularizer(grouped, 0.1), 0.005 * estimate.value)
    with pytest.raises(ValueError, match="not trainable parameters"):
        gauss_newton_trace(model, loss_fn, inputs, targets, groups={"g": ["nope"]})


def sequential_site_traces_dense(model, loss_fn, inputs, targets, site_indices):
    """Σᵢ Tr(Jₖᵢᵀ H_L,ii Jₖᵢ) with Jₖᵢ = ∂f(xᵢ)/∂hₖ(xᵢ) from torch.autograd.functional.jacobian on the tail of a
    Sequential; index -1 stands for the input."""
    with torch.no_grad():
        outputs = model(inputs)
    output_hessian = torch.func.hessian(lambda out: loss_fn(out.view_as(outputs), targets))(outputs.reshape(-1))
    blocks = output_hessian.view(N, CLASSES, N, CLASSES)
    traces = []
    for index in site_indices:
        head, tail = model[: index + 1], model[index + 1 :]
        total = 0.0
        for i in range(inputs.shape[0]):
            activation = head(inputs[i : i + 1]).detach()
            jacobian = torch.autograd.functional.jacobian(tail, activation).reshape(CLASSES, -1)
            total += torch.trace(jacobian.T @ blocks[i, :, i, :] @ jacobian).item()
        traces.append(total)
    return traces


@pytest.mark.parametrize("activation", [nn.Tanh, nn.ReLU])
@pytest.mark.parametrize("loss_name", ["cross_entropy", "half_mse", "mse"])
def test_activation_traces_match_dense_jacobians(activation, loss_name):
    model, loss_fn, inputs, targets = make_problem("mlp", loss_name)
    model[1], model[3] = activation(), activation()
    traces = activation_gauss_newton_trace(model, loss_fn, inputs, targets, sites=["input", model[1], model[3]])
    reference = sequential_site_traces_dense(model, loss_fn, inputs, targets, [-1, 1, 3])
    for value, expected in zip(traces, reference):
        assert relative_error(value, expected) <= 1e-8
    sigmas = [0.0, 0.1, 0.2]
    regularizer = camuto_regularizer(model, loss_fn, inputs, targets, [model[0], model[1], model[3]], sigmas)
    assert math.isclose(regularizer, 0.5 * (0.01 * traces[1] + 0.04 * traces[2]), rel_tol=1e-10)


def test_camuto_regularizer_equals_the_noise_induced_loss_increase_for_a_linear_tail():
    """For a network linear after the noised site, E[L(h + σε)] − L = R exactly (Camuto Eq. 9 / Eq. 11 with
    the batch mean): checks the 1/n normalisation against Monte Carlo."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3), nn.Identity(), nn.Linear(3, CLASSES)).eval()
    inputs, targets = torch.randn(N, 4), torch.randn(N, CLASSES)
    loss_fn, sigma = HalfMSELoss(), 0.3
    predicted = camuto_regularizer(model, loss_fn, inputs, targets, [model[1]], sigma)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        hidden = model[:2](inputs)
        clean = loss_fn(model[2:](hidden), targets)
        noise = sigma * torch.randn(20000, *hidden.shape, generator=generator)
        outputs = model[2:](hidden + noise)
        increases = 0.5 * (outputs - targets).pow(2).sum(dim=2).mean(dim=1) - clean
    standard_error = increases.std().item() / math.sqrt(len(increases))
    assert abs(increases.mean().item() - predicted) <= 4 * standard_error


def test_output_gradient_norm_squared_matches_per_sample_dense_gradients():
    model, _, inputs, _ = make_problem("mlp", "half_mse")
    model[1] = nn.Tanh()
    parameters = trainable_parameters(model)
    total = 0.0
    for i in range(N):
        model.zero_grad(set_to_none=True)
        jacobian = torch.autograd.functional.jacobian(
            lambda *ps: functional_call(model, dict(zip(parameters, ps)), (inputs[i : i + 1],)).reshape(-1),
            tuple(p.detach() for p in parameters.values()),
        )
        total += sum(j.pow(2).sum().item() for j in jacobian)
    assert relative_error(output_gradient_norm_squared(model, inputs), total / N) <= 1e-10
    model[1] = nn.PReLU()  # the torch.func path
    assert output_gradient_norm_squared(model, inputs) > 0


# ------------------------------------------------------------------------------------------------ closed forms


def monte_carlo(increase_fn, samples: int, seed: int = 0) -> tuple[float, float]:
    """Mean and standard error of the loss increase over `samples` draws."""
    generator = torch.Generator().manual_seed(seed)
    increases = increase_fn(samples, generator)
    return increases.mean().item(), increases.std().item() / math.sqrt(samples)


def half_mse(prediction, labels):  # prediction (…, d, n), labels Yᵀ (d, n): 1/(2n) ‖Yᵀ − Φ‖²_F
    return 0.5 * (prediction - labels).pow(2).sum(dim=(-2, -1)) / labels.shape[-1]


@pytest.fixture
def linear_problem():
    generator = torch.Generator().manual_seed(3)
    X = torch.randn(5, 3, generator=generator)
    W1 = torch.randn(4, 3, generator=generator) / 2
    W2 = torch.randn(2, 4, generator=generator) / 2
    Y = torch.randn(5, 2, generator=generator)
    return X, W1, W2, Y


def test_one_hidden_layer_all_parameter_noise_matches_monte_carlo(linear_problem):
    X, W1, W2, Y = linear_problem
    sigma = 0.5
    closed = one_hidden_layer_all_parameter_noise(W1, W2, X, sigma)
    clean = half_mse(W2 @ W1 @ X.T, Y.T)

    def increase(samples, generator):
        E1 = torch.randn(samples, *W1.shape, generator=generator)
        E2 = torch.randn(samples, *W2.shape, generator=generator)
        return half_mse((W2 + sigma * E2) @ (W1 + sigma * E1) @ X.T, Y.T) - clean

    mean, stderr = monte_carlo(increase, 200_000)
    assert abs(mean - closed["total"].item()) <= 4 * stderr
    # The Fig. 1 caption's ‖X‖⁴_F would be rejected: the variance term really has ‖X‖²_F.
    wrong = closed["second_order"] + sigma**4 / (2 * 5) * 4 * 2 * X.pow(2).sum() ** 2
    assert abs(mean - wrong.item()) > 4 * stderr
    assert abs(mean - closed["second_order"].item()) > 4 * stderr  # the σ⁴ term is there


def test_one_hidden_layer_layerwise_noise_matches_monte_carlo(linear_problem):
    X, W1, W2, Y = linear_problem
    sigma = 0.5
    closed = one_hidden_layer_layerwise_noise(W1, W2, X, sigma)
    clean = half_mse(W2 @ W1 @ X.T, Y.T)

    def increase(samples, generator):
        first = torch.rand(samples, generator=generator) < 0.5  # which layer gets √2σE
        E1 = math.sqrt(2) * sigma * torch.randn(samples, *W1.shape, generator=generator) * first[:, None, None]
        E2 = math.sqrt(2) * sigma * torch.randn(samples, *W2.shape, generator=generator) * ~first[:, None, None]
        return half_mse((W2 + E2) @ (W1 + E1) @ X.T, Y.T) - clean

    mean, stderr = monte_carlo(increase, 200_000)
    assert closed["variance_term"].item() == 0.0
    assert abs(mean - closed["total"].item()) <= 4 * stderr


@pytest.mark.parametrize("sigma", [0.07, 0.3, 3.0])  # the minimiser shrunk, the same, and shrunk to zero
def test_the_regularised_minimum_is_what_minimising_the_explicit_regulariser_reaches(sigma):
    """Orvieto Fig. 2: min over (W₁, W₂) of L + σ²/(2n)[‖W₂‖²‖X‖² + ‖W₁Xᵀ‖²] (d₂ = 1) in closed form equals what
    L-BFGS on the explicit regulariser reaches from a random start, in float64, for labels off the column space."""
    generator = torch.Generator().manual_seed(5)
    X = torch.randn(40, 10, generator=generator, dtype=torch.float64)
    y = 2 * X[:, 0] - X[:, 1] + 0.3 * torch.randn(40, generator=generator, dtype=torch.float64)
    W1 = (0.1 * torch.randn(50, 10, generator=generator, dtype=torch.float64)).requires_grad_()
    W2 = (0.1 * torch.randn(1, 50, generator=generator, dtype=torch.float64)).requires_grad_()
    optimizer = torch.optim.LBFGS(
        [W1, W2],
        max_iter=5000,
        tolerance_grad=1e-14,
        tolerance_change=1e-16,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def regularised() -> torch.Tensor:
        loss = half_mse(W2 @ W1 @ X.T, y.unsqueeze(0))
        return loss + one_hidden_layer_layerwise_noise(W1, W2, X, sigma)["second_order"]

    def closure():
        optimizer.zero_grad()
        value = regularised()
        value.backward()
        return value

    for _ in range(5):
        optimizer.step(closure)
    reached = regularised().item()
    assert one_hidden_layer_regularized_minimum(X, y, sigma).item() == pytest.approx(reached, rel=1e-7, abs=1e-12)


def test_deep_linear_layerwise_noise_matches_monte_carlo_and_gauss_newton_trace(linear_problem):
    X, W1, W2, Y = linear_problem
    W3 = torch.randn(3, 2, generator=torch.Generator().manual_seed(4))
    weights, sigma, M = [W1, W2, W3], 0.4, 3
    closed = deep_linear_layerwise_noise(weights, X, sigma)
    clean = half_mse(W3 @ W2 @ W1 @ X.T, (Y @ torch.ones(2, 3)).T)

    def increase(samples, generator):
        layer = torch.randint(0, M, (samples,), generator=generator)
        noisy = [
            W + math.sqrt(M) * sigma * torch.randn(samples, *W.shape, generator=generator) * (layer == j)[:, None, None]
            for j, W in enumerate(weights)
        ]
        return half_mse(noisy[2] @ noisy[1] @ noisy[0] @ X.T, (Y @ torch.ones(2, 3)).T) - clean

    mean, stderr = monte_carlo(increase, 200_000)
    assert abs(mean - closed.item()) <= 4 * stderr
    # Eq. 11: the same number is σ²/2 · the Gauss–Newton trace of the network (here also its Hessian trace).
    network = nn.Sequential(*[nn.Linear(W.shape[1], W.shape[0], bias=False) for W in weights])
    for layer, W in zip(network, weights):
        layer.weight.data.copy_(W)
    trace = hessian_trace(network, HalfMSELoss(), X, Y @ torch.ones(2, 3), method="exact")
    assert math.isclose(orvieto_regularizer(trace, sigma), closed.item(), rel_tol=1e-10)


class DiagonalNetwork(nn.Module):
    piecewise_linear_in_parameters = False  # w ∘ w

    def __init__(self, w1, w2):
        super().__init__()
        self.w1, self.w2 = nn.Parameter(w1.clone()), nn.Parameter(w2.clone())

    def forward(self, x):
        return (x @ (self.w1 * self.w1 - self.w2 * self.w2)).unsqueeze(1)


def test_diagonal_network_regularizer_matches_monte_carlo_and_gauss_newton_trace():
    generator = torch.Generator().manual_seed(5)
    X = torch.randn(6, 4, generator=generator)
    w1, w2 = torch.randn(4, generator=generator), torch.randn(4, generator=generator)
    y = torch.randn(6, generator=generator)
    sigma = 0.3
    closed = diagonal_network_regularizer(w1, w2, X, sigma)

    def loss(a, b):
        return 0.5 * (X @ (a * a - b * b).T - y[:, None]).pow(2).mean(dim=0)

    clean = loss(w1[None], w2[None])

    def increase(samples, generator):
        e1, e2 = (sigma * torch.randn(samples, 4, generator=generator) for _ in range(2))
        return loss(w1 + e1, w2 + e2) - clean

    mean, stderr = monte_carlo(increase, 400_000)
    assert abs(mean - closed["total"].item()) <= 4 * stderr
    # Eq. 7's σ² term is σ²/2 · the Gauss–Newton trace of Φ(w) = X(w₁∘w₁ − w₂∘w₂).
    ggn = gauss_newton_trace(DiagonalNetwork(w1, w2), HalfMSELoss(), X, y[:, None])
    assert math.isclose(orvieto_regularizer(ggn, sigma), closed["second_order"].item(), rel_tol=1e-10)
    with pytest.raises(ValueError, match="declares piecewise_linear_in_parameters = False"):
        hessian_trace(DiagonalNetwork(w1, w2), HalfMSELoss(), X, y[:, None], method="exact")


def test_trace_estimate_is_a_dataclass_with_the_promised_fields():
    estimate = TraceEstimate(value=1.0, stderr=0.0, matvecs=3, method="exact", per_group={"a": 1.0})
    assert (estimate.value, estimate.stderr, estimate.matvecs, estimate.method) == (1.0, 0.0, 3, "exact")
