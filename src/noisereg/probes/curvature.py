"""What `curvature.every` logs during training: the Hessian trace and the regularizer the run's noise mode
implies, measured on a fixed, seeded subset of the training set, so predicted and measured values sit side by side.

| metric | when | formula |
|---|---|---|
| `hessian/trace`, `hessian/trace_sem` | always | `hessian_trace(method)`: exact for piecewise-linear nets (sem 0) |
| `reg/ggn_trace`, `reg/ggn_trace/<group>` | always | tr(Jθᵀ H_L Jθ), per noise group (Orvieto Eq. 11) |
| `reg/...`, `loss/regularized` | the noise mode's `regularizer_metrics` | parameter noise: Orvieto Eq. 6 / 11; activation noise: Camuto Eq. 9; label noise: Blanc Eq. 1 |
| `theory/...` | models with `closed_forms`, half_mse loss, parameter noise | Orvieto's closed forms (Sec. 2.3, 3.1, 3.2, App. E) |
| `theory/R_sigma_mc`, `_sem` | `monte_carlo_repeats` > 0, parameter noise | mean of L(w + noise) over fresh draws of the run's noise |

Which regularizer is logged is decided by what the noise mode is (its `regularizer_metrics`) and what the model
is (its `closed_forms`), never by names here: the probe asks the mode through its protocol (noise/base.py), and
the formulas are curvature/'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

import torch

from noisereg.curvature.regularizers import gauss_newton_trace
from noisereg.curvature.trace import METHODS, exact_is_valid, hessian_trace
from noisereg.errors import SettingError
from noisereg.losses import HalfMSELoss
from noisereg.probes.base import CurvatureContext, Measurement, Probe, ProbeContext

# The Monte-Carlo copy of the run's noise draws from its own random stream (app.py numbers the streams).
MONTE_CARLO_STREAM = 3


@dataclass
class CurvatureSettings:
    every: Optional[int] = None  # measurements every `every` steps or epochs (and at step 0 and the end); None: off
    unit: str = "steps"  # what `every` counts: steps | epochs
    n_samples: int = 1024  # the fixed training subset the curvature is measured on
    seed: int = 0  # which subset, and the Monte-Carlo probes
    method: str = "auto"
    probes: int = 100
    chunk_size: Optional[int] = None
    monte_carlo_repeats: int = 0

    def check(self, group: str = "curvature") -> None:
        """Checked whether or not curvature is on, so a typo never waits for the day it is switched on."""
        if self.method not in METHODS:
            raise SettingError(f"curvature.method={self.method!r} is unknown; choose one of {list(METHODS)}")
        if self.unit not in ("steps", "epochs"):
            raise SettingError(f"curvature.unit={self.unit!r} is unknown; choose steps or epochs")
        if self.every is not None and self.every < 1:
            raise SettingError(f"curvature.every={self.every} must be >= 1, or null to switch curvature off")
        if self.n_samples < 1 or self.probes < 1 or self.monte_carlo_repeats < 0:
            raise SettingError(
                "curvature.n_samples and curvature.probes must be >= 1, curvature.monte_carlo_repeats >= 0"
            )
        if self.method == "hutchpp" and self.probes < 3:
            raise SettingError(f"curvature.method=hutchpp needs curvature.probes >= 3 (got {self.probes})")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise SettingError(f"curvature.chunk_size={self.chunk_size} must be >= 1, or null for automatic")


class CurvatureProbe(Probe):
    name = "curvature"

    def __init__(self, context: ProbeContext, settings: CurvatureSettings):
        settings.check()
        every = settings.every
        super().__init__(every if every is None or settings.unit == "steps" else every * context.steps_per_epoch)
        self.model, self.loss_fn, self.noise, self.settings = context.model, context.loss_fn, context.noise, settings
        data = context.data
        subset = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(settings.seed))
        subset = subset[: settings.n_samples].to(data.train_inputs.device)
        self.inputs = data.model_inputs(data.train_inputs[subset])  # as the model takes them, never augmented
        self.targets = context.loss_targets(data.train_targets[subset])  # clean targets, in the form the loss takes
        self.half_mse = isinstance(self.loss_fn, HalfMSELoss)  # the closed forms assume L = 1/(2n)‖y − f‖²
        self.parameter_noise = self.noise.perturbs_parameters  # it perturbs the weights: Orvieto's setting
        # Monte Carlo draws come from a separate noise object, so measuring never shifts the run's own draws.
        # R_σ = E L(w + noise) is defined for parameter noise only.
        self.monte_carlo_noise = None
        if settings.monte_carlo_repeats and self.parameter_noise:
            self.monte_carlo_noise = context.make_noise(MONTE_CARLO_STREAM)
            self.monte_carlo_noise.attach(self.model, data)
        self.exact = settings.method in ("auto", "exact") and exact_is_valid(self.model, self.loss_fn, self.inputs)
        if settings.method == "exact" and not self.exact:
            raise SettingError(
                "curvature.method=exact needs a network piecewise linear in each parameter tensor (ReLU or linear) "
                "and a cross_entropy/mse/half_mse loss; use curvature.method=auto or hutchinson"
            )
        self._check_pyhessian_uses_every_parameter()

    def _check_pyhessian_uses_every_parameter(self) -> None:
        """PyHessian crashes on parameters unused in eval mode (NIN's weights); say so before training."""
        if self.settings.method != "pyhessian":
            return
        with torch.enable_grad():
            was_training = self.model.training
            self.model.eval()
            try:
                output = self.model(self.inputs[:1])
                used = torch.autograd.grad(output.sum(), list(self.model.parameters()), allow_unused=True)
            finally:
                self.model.train(was_training)
        if any(gradient is None for gradient in used):
            raise SettingError(
                "curvature.method=pyhessian fails on parameters unused in eval mode (e.g. NIN's "
                "weights); use curvature.method=auto or hutchinson"
            )

    def measure(self, step: int) -> Measurement:
        metrics: dict[str, float] = {}
        groups = self.noise.named_groups()
        ggn = gauss_newton_trace(self.model, self.loss_fn, self.inputs, self.targets, groups, self.settings.chunk_size)
        metrics["reg/ggn_trace"] = ggn.value
        metrics.update({f"reg/ggn_trace/{name}": value for name, value in ggn.per_group.items()})
        if self.exact:  # the Gauss–Newton trace is the Hessian trace here: no second computation
            metrics["hessian/trace"], metrics["hessian/trace_sem"] = ggn.value, 0.0
        else:
            estimate = self._hessian_trace()
            metrics["hessian/trace"], metrics["hessian/trace_sem"] = estimate.value, estimate.stderr
            if estimate.samples is not None:  # a Monte-Carlo method: the probes its value and error rest on
                metrics["hessian/probes"] = len(estimate.samples)
        loss = self._loss()
        context = CurvatureContext(
            self.model, self.loss_fn, self.inputs, self.targets, loss, ggn.value, self.settings.chunk_size
        )
        metrics.update(self.noise.regularizer_metrics(context))
        if self.parameter_noise and self.half_mse and hasattr(self.model, "closed_forms"):
            metrics.update(self._closed_forms(loss))
        if self.monte_carlo_noise is not None:
            metrics.update(self._monte_carlo())
        return Measurement(metrics=metrics)

    def _hessian_trace(self):
        method, options = self.settings.method, {}
        if method in ("auto", "hutchinson", "pyhessian"):
            options["probes"] = self.settings.probes
        if method == "hutchpp":
            options["matvecs"] = self.settings.probes
        if method in ("auto", "hutchinson", "hutchpp", "pyhessian"):
            options["seed"] = self.settings.seed
        return hessian_trace(self.model, self.loss_fn, self.inputs, self.targets, method=method, **options)

    @torch.no_grad()
    def _loss(self) -> float:
        was_training = self.model.training
        self.model.eval()
        try:
            return float(self.loss_fn(self.model(self.inputs), self.targets))
        finally:
            self.model.train(was_training)

    def _closed_forms(self, loss: float) -> dict[str, float]:
        """The model's exact expressions; `theory/R_sigma_closed_form` is E L(w + noise) for this noise mode."""
        forms = self.model.closed_forms(self.inputs, self.noise.per_parameter_sigma, loss, targets=self.targets)
        if forms is None:
            return {}
        metrics, expected_loss = forms
        metrics = dict(metrics)
        if self.noise.closed_form in expected_loss:
            metrics["theory/R_sigma_closed_form"] = expected_loss[self.noise.closed_form]
        return metrics

    @torch.no_grad()
    def _monte_carlo(self) -> dict[str, float]:
        """R_σ = E L(w + noise) by fresh draws of the run's noise mode (Orvieto Fig. 1: 100 repeats)."""
        was_training = self.model.training
        self.model.eval()
        values = []
        try:
            for _ in range(self.settings.monte_carlo_repeats):
                with self.monte_carlo_noise.perturbed():
                    values.append(float(self.loss_fn(self.model(self.inputs), self.targets)))
        finally:
            self.model.train(was_training)
        values_tensor = torch.tensor(values, dtype=torch.float64)
        sem = float(values_tensor.std() / math.sqrt(len(values))) if len(values) > 1 else 0.0
        return {"theory/R_sigma_mc": float(values_tensor.mean()), "theory/R_sigma_mc_sem": sem}

    def state_dict(self) -> dict[str, Any]:
        return {"monte_carlo_noise": None if self.monte_carlo_noise is None else self.monte_carlo_noise.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.monte_carlo_noise is not None:
            self.monte_carlo_noise.load_state_dict(state["monte_carlo_noise"])
