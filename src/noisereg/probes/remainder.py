"""`probes.remainder`: Camuto et al.'s R against the remainder E[C] of Theorem 1 (Fig. 2), on a fixed batch.

    E[L̃] = L + R + E[C]:   E[C] ≈ (1/D) Σ_d L̃(B; θ, ε_d) − R(B; θ) − L(B; θ)

with R the explicit regulariser (Eq. 9) of the run's activation noise (its layers and variances) and L̃ the loss
with fresh noise ε_d on those layers. The draws come in antithetic pairs (ε, −ε): each pair's mean loss has the
same expectation, but the first-order term Jε — most of L̃'s spread — cancels inside it, so the standard error
of E[C] is far smaller than with independent draws for the same number of forward passes. The standard error is
that of the pair means. Draws are stacked into a few large forward passes; the noise is added by this probe's own
hooks, in eval mode, from its own generator, so the run's noise and trajectory are untouched.

Metrics: `remainder/loss` (L), `remainder/noisy_loss` (the mean of L̃), `remainder/R`, `remainder/expected_C`,
`remainder/expected_C_sem`, `remainder/ratio` (E[C]/R).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from noisereg.curvature.gauss_newton import evaluation_mode
from noisereg.curvature.regularizers import INPUT_SITE, camuto_regularizer
from noisereg.errors import SettingError
from noisereg.noise.random_streams import RandomStreams
from noisereg.probes.base import Measurement, Probe, ProbeContext, ProbeSettings
from noisereg.registry import PROBES


@dataclass
class RemainderSettings(ProbeSettings):
    n_samples: int = 32  # the batch B (Camuto Fig. 2: 32), a fixed random subset of the training set
    draws: int = 1000  # noise draws for E[L̃] (Fig. 2: 1000), in antithetic pairs
    draws_per_pass: int = 200  # draws stacked into one forward pass (memory: draws_per_pass × n_samples rows)
    seed: int = 0  # the batch and the draws (the experiments tie it to the run's seed)

    def check(self, group: str = "probes.remainder") -> None:  # also while `every` is unset (config.validate)
        super().check(group)
        if self.n_samples < 1:
            raise SettingError(f"{group}.n_samples={self.n_samples} must be >= 1")
        if self.draws < 2 or self.draws % 2:
            raise SettingError(f"{group}.draws={self.draws} must be an even number >= 2 (antithetic pairs)")
        if self.draws_per_pass < 2:
            raise SettingError(f"{group}.draws_per_pass={self.draws_per_pass} must be >= 2 (one antithetic pair)")


@PROBES.register("remainder", RemainderSettings)
class RemainderProbe(Probe):
    name = "remainder"

    def __init__(
        self,
        context: ProbeContext,
        every: int | None,
        unit: str,
        n_samples: int,
        draws: int,
        draws_per_pass: int,
        seed: int,
    ):
        RemainderSettings(
            every=every, unit=unit, n_samples=n_samples, draws=draws, draws_per_pass=draws_per_pass, seed=seed
        ).check()
        super().__init__(every if every is None or unit == "steps" else every * context.steps_per_epoch)
        sites, variances = getattr(context.noise, "sites", None), getattr(context.noise, "variances", None)
        if not sites or getattr(context.noise, "kind", "additive") != "additive":
            raise SettingError(
                "probes.remainder needs noise=gni (additive) or gni_explicit: it measures the remainder "
                "of their noise's expected loss beyond R"
            )
        data = context.data
        rows = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(seed))[:n_samples]
        rows = rows.to(data.train_inputs.device)
        self.random = RandomStreams(seed)  # the draws, spread over the CPU cores (noise/random_streams.py)
        self.inputs = data.train_inputs[rows]
        self.targets = context.loss_targets(data.train_targets[rows])
        self.model, self.loss_fn = context.model, context.loss_fn
        self.sites, self.variances = list(sites), list(variances)
        self.pairs, self.pairs_per_pass = draws // 2, max(1, draws_per_pass // 2)

    def measure(self, step: int) -> Measurement:
        with evaluation_mode(self.model):
            with torch.no_grad():
                clean = float(self.loss_fn(self.model(self.inputs), self.targets))
            pair_means = self._noisy_losses()
            regularizer = camuto_regularizer(
                self.model, self.loss_fn, self.inputs, self.targets, self.sites, [math.sqrt(v) for v in self.variances]
            )
        noisy = float(pair_means.mean())
        sem = float(pair_means.std() / math.sqrt(len(pair_means)))
        remainder = noisy - clean - regularizer
        metrics = {
            "remainder/loss": clean,
            "remainder/noisy_loss": noisy,
            "remainder/R": regularizer,
            "remainder/expected_C": remainder,
            "remainder/expected_C_sem": sem,
            "remainder/ratio": remainder / regularizer if regularizer > 0 else math.nan,
        }
        return Measurement(metrics=metrics)

    @torch.no_grad()
    def _noisy_losses(self) -> torch.Tensor:
        """The mean of L̃(ε) and L̃(−ε) for each antithetic pair, in float64."""
        n = self.inputs.shape[0]
        means = []
        done = 0
        while done < self.pairs:
            pairs = min(self.pairs_per_pass, self.pairs - done)
            copies = 2 * pairs
            inputs = self.inputs.repeat(copies, *[1] * (self.inputs.dim() - 1))
            handles = []
            try:
                for site, variance in zip(self.sites, self.variances):
                    if variance == 0:
                        continue
                    if site == INPUT_SITE:
                        inputs = self._antithetic(inputs, math.sqrt(variance))
                    else:
                        handles.append(site.register_forward_hook(self._noise_hook(math.sqrt(variance))))
                outputs = self.model(inputs)
            finally:
                for handle in handles:
                    handle.remove()
            per_copy = outputs.view(copies, n, *outputs.shape[1:])
            losses = torch.stack([self.loss_fn(out, self.targets) for out in per_copy])
            losses = losses.double().view(2, pairs)
            means.append(losses.mean(dim=0))
            done += pairs
        return torch.cat(means)

    def _antithetic(self, activation: torch.Tensor, sigma: float) -> torch.Tensor:
        """activation + (ε, −ε): the first half of the copies gets ε, the second half −ε."""
        half = activation.shape[0] // 2
        noise = self.random.normal_(torch.empty_like(activation[:half]), sigma)
        return activation + torch.cat([noise, -noise])

    def _noise_hook(self, sigma: float):
        def add_noise(module, args, output):
            return self._antithetic(output, sigma)

        return add_noise

    def state_dict(self) -> dict[str, Any]:
        return {"random": self.random.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.random.load_state_dict(state["random"])
