"""noisereg's noise modes in your own training loop (no Hydra, no records): docs/noise.md explains each hook."""

import torch

from noisereg.curvature import hessian_trace
from noisereg.models import MLP
from noisereg.noise import ActivationNoise, AllParamNoise, LabelNoise, LayerwiseNoise, NoiseMode

torch.manual_seed(0)
torch.set_num_threads(1)  # a tiny model: a second thread only adds synchronisation
x = torch.randn(256, 10)
y = x[:, :2].sum(dim=1, keepdim=True)  # a sparse linear target, as Orvieto's synthetic data
loss_fn = torch.nn.MSELoss()
modes = {
    "gd": lambda model: NoiseMode(),  # GD: every hook does nothing
    "gd_noise": lambda model: AllParamNoise(model, sigma=0.05, seed=1),  # each of M tensors: σ/√M
    "layerwise": lambda model: LayerwiseNoise(model, sigma=0.05, seed=1),  # one tensor a step: σ
    "label_noise": lambda model: LabelNoise(delta=0.1, seed=1),  # y + Z, Z ~ N(0, δ²)
    "gni": lambda model: ActivationNoise(variance=0.01, seed=1),  # N(0, σ²) on the input and hidden activations
}
for name, make in modes.items():
    model = MLP(10, 1, [64, 64], generator=torch.Generator().manual_seed(0))
    noise = make(model)
    noise.attach(model)  # hooks (GNI) or parameter groups; call before building the optimizer
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for step in range(200):
        model.train()
        noise.begin_step(step, epoch=0)  # its schedule: noise.stop_step / stop_epoch
        optimizer.zero_grad()
        targets = noise.targets(x, y)  # label noise changes the targets, other modes return y
        with noise.perturbed():  # parameter noise on entry, restored bitwise on exit
            loss_fn(model(x), targets).backward()  # the gradient at the perturbed point
        optimizer.step()  # applied to the unperturbed weights
    model.eval()  # evaluation is noise-free
    with torch.no_grad():
        loss = loss_fn(model(x), y).item()
    trace = hessian_trace(model, loss_fn, x, y, method="exact").value
    print(f"{name:12s} train loss {loss:.2e}  Hessian trace {trace:8.3f}")
