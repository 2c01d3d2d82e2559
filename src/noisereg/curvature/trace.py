"""The trace of the Hessian of a training loss with respect to the parameters, tr(∇²θ L).

Four methods and a chooser, one entry point `hessian_trace(model, loss_fn, inputs, targets, method=...)`:

- ``exact``: the Gauss–Newton identity. Orvieto et al. Eq. 5: the Hessian is Jᵀ H_L J + Σ_o ∂L/∂f_o ∇²θ f_o, and the
  second term has zero trace when the network is piecewise linear in each parameter tensor (their condition
  D²Φ(w)[I] = 0: ReLU/linear MLPs and CNNs, max/average pooling, residual sums, BatchNorm in eval mode). Then
  tr(∇²θ L) = tr(Jᵀ H_L J) = Σᵢ Σ_c ‖∇θ (A_{i,:,c}ᵀ f(xᵢ))‖², with H_L,i = Aᵢ Aᵢᵀ the output Hessian of sample i.
  Deterministic: no probes, no standard error. `check_piecewise_linear` refuses models it cannot vouch for.
- ``hutchinson``: mean of vᵀ H v over Rademacher probes v, with its standard error. Works for any model and loss.
- ``hutchpp``: Hutch++ (Meyer, Musco, Musco, Woodruff 2021) with a budget of Hessian-vector products.
- ``pyhessian``: Hutchinson on PyHessian 0.1's Hessian-vector product, for comparison with the literature.
- ``auto``: exact where valid, otherwise Hutchinson.

Every method evaluates curvature in eval mode and leaves the model's per-module train/eval flags, its parameters and
their ``.grad`` fields (``None`` included) as it found them.

The exact method's machinery lives in gauss_newton.py, its validity check in piecewise_linear.py.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from noisereg.curvature.gauss_newton import (
    evaluation_mode,
    ggn_trace_per_parameter,
    loss_hessian_factor_fn,
    trainable_parameters,
)
from noisereg.curvature.piecewise_linear import check_piecewise_linear
from noisereg.losses import HalfMSELoss

METHODS = ("auto", "exact", "hutchinson", "hutchpp", "pyhessian")


@dataclass
class TraceEstimate:
    """A trace value with its Monte-Carlo standard error (0.0 when exact) and its cost.

    `matvecs`: Hessian-vector products, or for the exact method backward passes (one per output column of the
    loss-Hessian factor per chunk of samples). `per_group`: parameter name (or group name) → trace of that
    diagonal block; keyed by parameter name the values sum to `value`. `samples`: the per-probe values vᵀHv of
    the Monte-Carlo methods.
    """

    value: float
    stderr: float
    matvecs: int
    method: str
    per_group: dict[str, float] | None = None
    samples: list[float] | None = field(default=None, repr=False)
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------------------------
# Hessian-vector products (double backward) for the Monte-Carlo methods.


class _HessianOperator:
    """v ↦ ∇²θ L v by double backward on a retained gradient graph. On CPU this measured faster than
    torch.func's jvp(grad) (0.052 s against 0.11 s, and 0.06 s vmapped over 8 probes, on the 784-500-500-500-10
    MLP with 1024 images); batching probes with is_grads_batched did not help on CPU either."""

    def __init__(self, model: nn.Module, loss_fn: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
        parameters = list(trainable_parameters(model).values())
        with torch.enable_grad():
            loss = loss_fn(model(inputs), targets)
            grads = torch.autograd.grad(loss, parameters, create_graph=True, allow_unused=True)
        # A gradient that does not depend on the parameters has a zero Hessian row: drop it.
        self.pairs = [(p, g) for p, g in zip(parameters, grads) if g is not None and g.requires_grad]
        self.parameters = parameters
        self.shapes = [p.shape for p in parameters]
        self.numel = sum(p.numel() for p in parameters)
        self.matvecs = 0

    def apply(self, vectors: list[torch.Tensor], batched: bool = False) -> list[torch.Tensor]:
        """H v for v given per parameter tensor (with a leading probe dimension when `batched`)."""
        self.matvecs += vectors[0].shape[0] if batched else 1
        index = {id(p): i for i, p in enumerate(self.parameters)}
        used = [index[id(p)] for p, _ in self.pairs]
        products = torch.autograd.grad(
            [g for _, g in self.pairs],
            self.parameters,
            [vectors[i] for i in used],
            retain_graph=True,
            allow_unused=True,
            is_grads_batched=batched,
        )
        return [torch.zeros_like(v) if hv is None else hv for v, hv in zip(vectors, products)]

    def apply_flat(self, vector: torch.Tensor) -> torch.Tensor:
        pieces = list(vector.split([math.prod(s) for s in self.shapes]))
        products = self.apply([piece.view(shape) for piece, shape in zip(pieces, self.shapes)])
        return torch.cat([hv.reshape(-1) for hv in products])

    def rademacher(self, leading: tuple[int, ...], generator: torch.Generator) -> list[torch.Tensor]:
        return [_rademacher(leading + tuple(p.shape), p, generator) for p in self.parameters]


def _rademacher(shape, like: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
    return bits.to(like.dtype).mul_(2).sub_(1)


def _generator(device: torch.device, seed: int, generator: torch.Generator | None) -> torch.Generator:
    return generator if generator is not None else torch.Generator(device=device).manual_seed(seed)


def _mean_and_stderr(samples: list[float]) -> tuple[float, float]:
    values = torch.tensor(samples, dtype=torch.float64)
    stderr = values.std().item() / math.sqrt(len(samples)) if len(samples) > 1 else float("nan")
    return values.mean().item(), stderr


def _hutchinson(model, loss_fn, inputs, targets, probes=100, seed=0, generator=None, probes_per_batch=1):
    """Hutchinson: tr H = E vᵀHv for Rademacher v; mean and standard error (sample std / √probes)."""
    if probes < 1:
        raise ValueError(f"probes={probes} must be at least 1")
    operator = _HessianOperator(model, loss_fn, inputs, targets)
    generator = _generator(inputs.device, seed, generator)
    samples: list[float] = []
    while len(samples) < probes:
        batch = min(probes_per_batch, probes - len(samples))
        vectors = operator.rademacher((batch,), generator)
        products = operator.apply(vectors if batch > 1 else [v[0] for v in vectors], batched=batch > 1)
        quadratic = sum((v * hv.reshape(v.shape)).reshape(batch, -1).sum(dim=1) for v, hv in zip(vectors, products))
        samples.extend(quadratic.double().tolist())
    value, stderr = _mean_and_stderr(samples)
    return TraceEstimate(value, stderr, operator.matvecs, "hutchinson", samples=samples)


def _hutchpp(model, loss_fn, inputs, targets, matvecs=None, probes=None, seed=0, generator=None):
    """Hutch++ (Meyer et al. 2021, Alg. 1): with S, G Rademacher of m/3 columns each, Q = orth(H S),
    tr H ≈ tr(Qᵀ H Q) + mean over g of gᵀ (I − QQᵀ) H (I − QQᵀ) g. The standard error is that of the second
    (Hutchinson) part, conditional on Q. The budget m is `matvecs` (or `probes`, so that one setting can serve
    every Monte-Carlo method), 99 by default."""
    matvecs = matvecs if matvecs is not None else (probes if probes is not None else 99)
    if matvecs < 3:
        raise ValueError(f"matvecs={matvecs} must be at least 3 for Hutch++")
    operator = _HessianOperator(model, loss_fn, inputs, targets)
    generator = _generator(inputs.device, seed, generator)
    sketch_size = matvecs // 3
    residual_probes = matvecs - 2 * sketch_size
    like = operator.parameters[0]
    sketch = torch.stack(
        [operator.apply_flat(_rademacher((operator.numel,), like, generator)) for _ in range(sketch_size)], dim=1
    )
    basis, _ = torch.linalg.qr(sketch.double())
    basis = basis.to(like.dtype)
    low_rank = sum(basis[:, j] @ operator.apply_flat(basis[:, j]) for j in range(sketch_size))
    samples = []
    for _ in range(residual_probes):
        g = _rademacher((operator.numel,), like, generator)
        g = g - basis @ (basis.T @ g)
        samples.append((g @ operator.apply_flat(g)).item())
    residual, stderr = _mean_and_stderr(samples)
    return TraceEstimate(float(low_rank) + residual, stderr, operator.matvecs, "hutchpp", samples=samples)


def _pyhessian(model, loss_fn, inputs, targets, probes=100, seed=0):
    """PyHessian 0.1's Hessian-vector product (`hessian(...)` builds the gradient graph, `hessian_vector_product`
    differentiates it along v) and its Rademacher probes (`randint_like`, from the global RNG: forked and seeded
    here), in our loop: exactly `probes` of them. Its own `trace()` stops early once its running mean moves by less
    than `tol` relative to that mean, which a negative running mean always satisfies (it divides by `trace + 1e-6`,
    not its absolute value): 2-3 of 200 probes and a negative trace were seen on a ReLU MLP."""
    if probes < 1:
        raise ValueError(f"probes={probes} must be at least 1")
    from pyhessian import hessian
    from pyhessian.utils import group_product, hessian_vector_product

    devices = [inputs.device] if inputs.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        # PyHessian calls loss.backward(create_graph=True); evaluation_mode resets the .grad fields afterwards.
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        torch.manual_seed(seed)
        computer = hessian(model, loss_fn, data=(inputs, targets), cuda=inputs.device.type == "cuda")
        samples = []
        for _ in range(probes):
            v = [torch.randint_like(p, high=2).mul_(2).sub_(1) for p in computer.params]  # ±1, as trace() draws
            samples.append(float(group_product(hessian_vector_product(computer.gradsH, computer.params, v), v)))
    del computer
    value, stderr = _mean_and_stderr(samples)
    return TraceEstimate(value, stderr, len(samples), "pyhessian", samples=samples)


def _exact(model, loss_fn, inputs, targets, chunk_size=None):
    check_piecewise_linear(model, inputs)
    factor_fn = loss_hessian_factor_fn(loss_fn, targets)
    per_parameter, passes = ggn_trace_per_parameter(model, inputs, factor_fn, chunk_size)
    return TraceEstimate(sum(per_parameter.values()), 0.0, passes, "exact", per_group=per_parameter)


def exact_is_valid(model: nn.Module, loss_fn: nn.Module, inputs: torch.Tensor) -> bool:
    """True when method='exact' applies: a supported loss and a model piecewise linear in each parameter tensor.
    Checked in eval mode (BatchNorm uses running statistics there)."""
    known_loss = isinstance(loss_fn, (nn.CrossEntropyLoss, nn.MSELoss, HalfMSELoss))
    if not known_loss:
        return False
    try:
        with evaluation_mode(model):
            check_piecewise_linear(model, inputs)
    except ValueError:
        return False
    return True


_OPTIONS = {
    "exact": ("chunk_size",),
    "hutchinson": ("probes", "seed", "generator", "probes_per_batch"),
    "hutchpp": ("matvecs", "probes", "seed", "generator"),
    "pyhessian": ("probes", "seed"),
}
_OPTIONS["auto"] = _OPTIONS["exact"] + _OPTIONS["hutchinson"]


def hessian_trace(
    model: nn.Module,
    loss_fn: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    method: str = "auto",
    **options,
) -> TraceEstimate:
    """tr(∇²θ L) of `loss_fn(model(inputs), targets)` over the trainable parameters, in eval mode.

    Options — exact: chunk_size (samples per forward; default from a memory budget);
    hutchinson: probes=100, seed=0, generator=None, probes_per_batch=1; hutchpp: matvecs=99 (or probes), seed,
    generator;
    pyhessian: probes=100 (all of them: PyHessian's early stop is not used), seed;
    auto: the exact and hutchinson options."""
    if method not in METHODS:
        raise ValueError(f"method={method!r} is unknown; choose one of {list(METHODS)}")
    unknown = set(options) - set(_OPTIONS[method])
    if unknown:
        raise TypeError(
            f"hessian_trace(method={method!r}) got unknown options {sorted(unknown)}; it takes {list(_OPTIONS[method])}"
        )
    start = time.perf_counter()
    with evaluation_mode(model):
        if method == "auto":
            method = "exact" if exact_is_valid(model, loss_fn, inputs) else "hutchinson"
            options = {k: v for k, v in options.items() if k in _OPTIONS[method]}
        compute = {"exact": _exact, "hutchinson": _hutchinson, "hutchpp": _hutchpp, "pyhessian": _pyhessian}[method]
        estimate = compute(model, loss_fn, inputs, targets, **options)
    estimate.seconds = time.perf_counter() - start
    return estimate
