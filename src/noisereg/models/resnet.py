"""ResNet18 for CIFAR-10 as in kuangliu/pytorch-cifar (He et al. 2016; Orvieto et al. Fig. 6): a 3×3 stride-1 stem,
no max-pool, BasicBlocks [2, 2, 2, 2] at widths 64/128/256/512 (stride 2 from the second stage on, a 1×1 conv +
BatchNorm shortcut where the shape changes), global average pooling, Linear(512, 10); 11,173,962 parameters in 62
tensors, BatchNorm's γ and β included (the noise groups of Orvieto's footnotes 4 and 7). `widths` scales the
stages (scale=smoke shrinks them)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from noisereg.errors import SettingError
from noisereg.models.init import initialise
from noisereg.registry import MODELS


@dataclass
class ResNetSettings:
    name: str = "resnet18"
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512])  # the four stages' channels
    blocks: list[int] = field(default_factory=lambda: [2, 2, 2, 2])  # BasicBlocks per stage (ResNet18)

    def check(self, group: str = "model") -> None:
        if len(self.widths) != len(self.blocks) or any(int(v) < 1 for v in [*self.widths, *self.blocks]):
            raise SettingError(
                f"model.widths={list(self.widths)} and model.blocks={list(self.blocks)} must be "
                "positive and as long as each other, e.g. [64,128,256,512] and [2,2,2,2]"
            )


class BasicBlock(nn.Module):
    piecewise_linear_in_parameters = True  # conv, BatchNorm (eval), ReLU and a residual sum

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()  # its own module: activation noise (GNI) tells the two sites apart
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            projection = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)
            self.shortcut = nn.Sequential(projection, nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        return self.relu2(out)


class ResNet(nn.Module):
    piecewise_linear_in_parameters = True

    def __init__(self, input_shape, num_outputs=10, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), generator=None):
        super().__init__()
        self.conv1 = nn.Conv2d(input_shape[0], widths[0], 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        in_planes = widths[0]
        for index, (planes, count) in enumerate(zip(widths, blocks)):
            stage = []
            for position in range(count):
                stride = 2 if index > 0 and position == 0 else 1
                stage.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            self.add_module(f"layer{index + 1}", nn.Sequential(*stage))  # kuangliu's names: layer1 … layer4
        self.n_stages = len(widths)
        # kuangliu's 4×4 average pool on the 4×4 maps of 32×32 inputs, for any input size; modules (not functions),
        # so that libraries that walk the module tree (BackPACK in scripts/bench_curvature.py) see every operation.
        self.average = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.linear = nn.Linear(widths[-1], num_outputs)
        initialise(self, generator)

    def stages(self) -> list[nn.Sequential]:
        return [getattr(self, f"layer{index + 1}") for index in range(self.n_stages)]

    def blocks(self) -> list[BasicBlock]:
        return [block for stage in self.stages() for block in stage]

    def hidden_activation_modules(self):
        return [self.relu] + [relu for block in self.blocks() for relu in (block.relu1, block.relu2)]

    def preactivation_modules(self):
        """Each convolution's normalised output (what its ReLU takes, before a residual sum) and the output layer."""
        return [self.bn1] + [bn for block in self.blocks() for bn in (block.bn1, block.bn2)] + [self.linear]

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        for stage in self.stages():
            out = stage(out)
        return self.linear(self.average(out))


@MODELS.register("resnet18", ResNetSettings)
def build_resnet(input_shape, num_outputs, generator=None, widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2)) -> ResNet:
    if len(input_shape) != 3:
        raise SettingError(f"model=resnet18 takes images (channels, height, width), not {tuple(input_shape)}")
    return ResNet(input_shape, num_outputs, [int(w) for w in widths], [int(b) for b in blocks], generator)
