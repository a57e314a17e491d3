"""Built-in architectures: bad or huge widths fail before anything is allocated, and the
check leaves the seeded initialisation exactly as it was."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from compaudit.errors import InputError
from compaudit.models import architectures as arch_mod
from compaudit.models.architectures import ARCHITECTURES, build

CASES: dict[str, dict[str, Any]] = {
    "mlp": {"in_features": 64, "num_classes": 10, "hidden": [32, 16]},
    "cnn28": {"num_classes": 10},
    "resnet20": {"num_classes": 10},
}


@pytest.mark.parametrize("arch", sorted(CASES))
def test_the_size_check_leaves_the_seeded_weights_alone(arch: str) -> None:
    """Counting on the meta device draws no random numbers: old runs resume unchanged."""
    torch.manual_seed(3)
    checked = build(arch, **CASES[arch])
    torch.manual_seed(3)
    plain = ARCHITECTURES[arch](**CASES[arch])
    for a, b in zip(checked.state_dict().values(), plain.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_negative_width_is_one_line() -> None:
    """Was torch's RuntimeError: an internal error."""
    with pytest.raises(InputError, match=r"architecture 'mlp': bad arguments .*negative"):
        build("mlp", in_features=64, num_classes=10, hidden=[-5])


def test_a_huge_model_is_refused_before_it_is_allocated() -> None:
    """hidden: [100000000] tried to allocate 25.6 GB before any check."""
    kw = {"in_features": 64, "num_classes": 10, "hidden": [100_000_000]}
    with pytest.raises(InputError) as info:
        build("mlp", **kw)
    assert str(info.value) == arch_mod.ERR_TOO_LARGE.format(
        arch="mlp", kwargs=kw, n=7_500_000_010, limit=arch_mod.MAX_PARAMETERS
    )
