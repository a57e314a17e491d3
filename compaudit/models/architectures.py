"""Built-in architectures: an MLP, a small CNN for 28x28 images, and ResNet-20.

Every model is built by name through :func:`build` from JSON-serialisable
keyword arguments, so a checkpoint can record ``(arch, arch_kwargs)`` and
rebuild the exact module before loading its weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812 (the PyTorch convention)

from compaudit.errors import InputError

__all__ = ["ARCHITECTURES", "CNN28", "ERR_UNKNOWN_ARCH", "MLP", "ResNet20", "build"]

ERR_UNKNOWN_ARCH = "unknown architecture '{arch}'; choose one of {choices}"
ERR_BAD_KWARGS = "architecture '{arch}': bad arguments {kwargs} ({reason})"
ERR_TOO_LARGE = (
    "architecture '{arch}' with {kwargs} has {n:,} parameters; compaudit builds at most "
    "{limit:,} (lower the widths)"
)
MAX_PARAMETERS = 1_000_000_000
"""Largest model built (4 GB of float32 weights): counted on the meta device first, so a
recipe or checkpoint asking for more fails before anything is allocated."""


class MLP(nn.Module):
    """Fully connected network; flattens its input first (works on images and tables).

    Parameters
    ----------
    in_features : int
        Number of input features after flattening.
    hidden : sequence of int
        Width of each hidden layer.
    num_classes : int
        Number of output logits.
    dropout : float
        Dropout probability after each hidden activation.
    """

    def __init__(
        self,
        in_features: int,
        hidden: Sequence[int] = (256, 128),
        num_classes: int = 10,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # type: ignore[no-any-return]


class CNN28(nn.Module):
    """Two conv blocks (conv 3x3, ReLU, max-pool 2) and a two-layer classifier.

    Sized for ``in_channels x in_size x in_size`` inputs: 1x28x28
    (Fashion-MNIST) by default, 1x8x8 (scikit-learn digits) with
    ``in_size=8``. The flattened size is computed from ``in_size`` rather
    than by adaptive pooling so that the ONNX export stays a plain graph.

    Parameters
    ----------
    num_classes : int
        Number of output logits.
    in_channels, in_size : int
        Input shape ``(in_channels, in_size, in_size)``; ``in_size`` divisible by 4.
    channels : sequence of two ints
        Filters of the two conv layers.
    hidden : int
        Width of the hidden fully connected layer.
    dropout : float
        Dropout before the last layer.
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 1,
        in_size: int = 28,
        channels: Sequence[int] = (32, 64),
        hidden: int = 128,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if in_size % 4:
            raise ValueError(f"in_size must be divisible by 4, got {in_size}")
        c1, c2 = (int(c) for c in channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        side = in_size // 4
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c2 * side * side, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))  # type: ignore[no-any-return]


class _PadShortcut(nn.Module):
    """ResNet "option A" shortcut: subsample by 2 and zero-pad the channels."""

    def __init__(self, extra_channels: int) -> None:
        super().__init__()
        self.extra = extra_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.extra // 2
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, half, self.extra - half))


class _BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = (
            _PadShortcut(c_out - c_in) if stride != 1 or c_in != c_out else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet20(nn.Module):
    """ResNet-20 for 3x32x32 images (He et al. 2016, CIFAR variant, option-A shortcuts).

    Parameters
    ----------
    num_classes : int
        Number of output logits.
    in_channels : int
        Input channels (3 for CIFAR-like images).
    width : int
        Filters of the first stage (16 in the paper); stages use 1x, 2x, 4x.
    blocks_per_stage : int
        Basic blocks per stage (3 gives ResNet-20).
    """

    def __init__(
        self,
        num_classes: int = 10,
        in_channels: int = 3,
        width: int = 16,
        blocks_per_stage: int = 3,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        blocks: list[nn.Module] = []
        c_in = width
        for stage in range(3):
            c_out = width * 2**stage
            for i in range(blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                blocks.append(_BasicBlock(c_in, c_out, stride))
                c_in = c_out
        self.layers = nn.Sequential(*blocks)
        self.fc = nn.Linear(c_in, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(F.relu(self.bn1(self.conv1(x))))
        # Global average pooling as a mean keeps the ONNX graph free of adaptive pooling.
        return self.fc(out.mean(dim=(2, 3)))  # type: ignore[no-any-return]


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "mlp": MLP,
    "cnn28": CNN28,
    "resnet20": ResNet20,
}


def build(arch: str, **kwargs: Any) -> nn.Module:
    """Build a built-in architecture by name.

    Parameters
    ----------
    arch : {"mlp", "cnn28", "resnet20"}
        Architecture name.
    **kwargs
        Constructor arguments (JSON-serialisable), e.g. ``in_features`` and
        ``hidden`` for ``"mlp"``, ``in_size`` for ``"cnn28"``.

    Returns
    -------
    torch.nn.Module
        A freshly initialised model (in training mode).

    Raises
    ------
    InputError
        Unknown architecture, arguments it does not accept, or more than
        :data:`MAX_PARAMETERS` parameters.
    """
    try:
        factory = ARCHITECTURES[arch]
    except KeyError:
        raise InputError(
            ERR_UNKNOWN_ARCH.format(arch=arch, choices=sorted(ARCHITECTURES))
        ) from None
    try:
        with torch.device("meta"):  # shapes only: no memory, no initialisation
            n = sum(p.numel() for p in factory(**kwargs).parameters())
    except (TypeError, ValueError, RuntimeError) as exc:
        # RuntimeError: torch's own refusals (a negative width).
        raise InputError(ERR_BAD_KWARGS.format(arch=arch, kwargs=kwargs, reason=exc)) from None
    if n > MAX_PARAMETERS:
        raise InputError(ERR_TOO_LARGE.format(arch=arch, kwargs=kwargs, n=n, limit=MAX_PARAMETERS))
    return factory(**kwargs)
