"""Where activation-level noise and regularizers attach to a model.

A model may say so itself with `hidden_activation_modules()` / `preactivation_modules()` (the CNNs and the ResNet
do, in forward order: one activation module per site, never a shared functional ReLU); otherwise we take its
activation modules and its Linear/Conv layers in registration order.
"""

from __future__ import annotations

from torch import nn

ACTIVATION_TYPES = (nn.ReLU, nn.Tanh, nn.ELU, nn.Sigmoid, nn.Identity, nn.LeakyReLU, nn.GELU, nn.Softplus)
LAYER_TYPES = (nn.Linear, nn.Conv1d, nn.Conv2d)


def hidden_activation_modules(model: nn.Module) -> list[nn.Module]:
    """Modules whose outputs are the hidden activations h₁ … h_{M−1} (never the network output)."""
    if hasattr(model, "hidden_activation_modules"):
        return list(model.hidden_activation_modules())
    return [m for m in model.modules() if isinstance(m, ACTIVATION_TYPES)]


def preactivation_modules(model: nn.Module) -> list[nn.Module]:
    """Modules whose outputs are the preactivations of each layer, the output layer last."""
    if hasattr(model, "preactivation_modules"):
        return list(model.preactivation_modules())
    return [m for m in model.modules() if isinstance(m, LAYER_TYPES)]


def output_width(module: nn.Module) -> int:
    """Features (Linear) or channels (Conv, BatchNorm) of a module's output: the size of a per-unit weight there."""
    for attribute in ("out_features", "out_channels", "num_features"):
        if hasattr(module, attribute):
            return int(getattr(module, attribute))
    raise ValueError(f"cannot tell how many units a {type(module).__name__} outputs")
