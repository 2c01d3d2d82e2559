"""How parameters are split into the groups that parameter noise perturbs."""

from __future__ import annotations

from torch import nn

from noisereg.errors import SettingError

GROUPINGS = ("tensor", "layer")


def parameter_groups(model: nn.Module, groups: str = "tensor") -> list[list[nn.Parameter]]:
    """`tensor`: every parameter tensor is a group (the authors' code, Orvieto App. F footnote 7: biases and
    BatchNorm weights count as groups). `layer`: the parameters a module owns directly (weight + bias) form one group."""
    if groups == "tensor":
        result = [[p] for p in model.parameters() if p.requires_grad]
    elif groups == "layer":
        result = []
        for module in model.modules():
            owned = [p for p in module.parameters(recurse=False) if p.requires_grad]
            if owned:
                result.append(owned)
    else:
        raise SettingError(f"noise.groups={groups!r} is unknown; choose one of {list(GROUPINGS)}")
    if not result:
        raise SettingError("the model has no trainable parameters to perturb")
    return result
