"""Training recipes: one YAML file describes a whole population experiment.

A recipe names the data, the architecture, the training hyperparameters (all
in one place, :class:`TrainingConfig`), the population size ``k``, a base
seed and a list of variants. A variant is

* ``dense``: trained from scratch;
* ``prune``: trained from scratch while gradual magnitude pruning (Zhu &
  Gupta 2017) raises the sparsity to its target, as in Hooker et al.; with
  ``from: <variant>`` it instead starts from that variant's trained members
  and prunes while fine-tuning for ``epochs`` (default: the recipe's);
* ``quantize``: post-training quantization of ``from``'s trained members (no
  training at all).

An optional ``influence`` section adds Feldman-Zhang subsampled runs of one
trained-from-scratch variant (:class:`InfluenceConfig`).

Unknown keys are errors. Every error names the file, the line and the key.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from compaudit._yaml import YamlLimitError, key_name, line_of, problem_line, read_text
from compaudit._yaml import load as load_yaml
from compaudit.data.base import Dataset
from compaudit.errors import PROBLEM_SEP, InputError
from compaudit.models.architectures import ARCHITECTURES

__all__ = [
    "ArchitectureConfig",
    "DatasetConfig",
    "InfluenceConfig",
    "PruneConfig",
    "QuantizeConfig",
    "Recipe",
    "TrainingConfig",
    "VariantConfig",
    "load_recipe",
    "recipe_from_dict",
]

ERR_KEY = "{src}:{line}: recipe key '{key}': {problem}"
ERR_KEY_NOLINE = "{src}: recipe key '{key}': {problem}"
ERR_YAML = "{src}:{line}: not valid YAML ({problem}); fix the syntax"
ERR_NOT_MAPPING = "{src}: a recipe must be a YAML mapping of keys to values, got {kind}"
ERR_MISSING_FILE = "{src}: no such recipe file"
ERR_DUPLICATE = "key given twice; keep one"
ERR_ENCODING = (
    "{src}: not UTF-8 text (byte 0x{byte:02x} at offset {offset} is not valid UTF-8); "
    "save the recipe as UTF-8"
)
ERR_UNREADABLE = "{src}: cannot read the recipe ({problem})"
ERR_CYCLE = "the 'from' links form a cycle ({chain}); start one of them from a dense variant"
ERR_INFLUENCE_VARIANT = (
    "'{variant}' is not trained from scratch; influence runs need a dense variant "
    "(or a prune variant without 'from')"
)

# Built-in quantization methods; plugins may add more (checked against the registry at run time).
BUILTIN_QUANTIZERS = ("onnx-dynamic", "onnx-static", "torch-dynamic", "fp16")
_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


_NOT_FINGERPRINTED = {"eval_train"}
"""Training keys that do not change the trained members."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DatasetConfig(_Strict):
    """Where the data come from: a dataset and two splits, or two data specs.

    With ``name`` (``digits``, ``fashion-mnist``, ``adult``, or any data spec
    that takes a split), ``train`` and ``eval`` are split names. Without it,
    they are whole data specs, e.g. ``train: data/train.npz``.
    """

    name: str | None = Field(default=None, min_length=1)
    """Built-in dataset or data spec; options (``?key=value``) are kept."""
    train: str = Field(default="train", min_length=1)
    """Split (or spec) the models are trained on, and quantizers calibrate on."""
    eval: str = Field(default="test", min_length=1)
    """Split (or spec) the metrics and ``compaudit report RUN_DIR`` use."""

    def spec(self, split: str) -> str:
        """The data spec of ``split``: ``name:split`` (options kept after ``?``),
        or ``split`` itself when there is no ``name``."""
        if self.name is None:
            return split
        base, sep, query = self.name.partition("?")
        return f"{base}:{split}{sep}{query}"


class ArchitectureConfig(_Strict):
    """A built-in architecture and its constructor arguments.

    ``in_features`` (mlp), ``in_channels``/``in_size`` (cnn28, resnet20) and
    ``num_classes`` are filled in from the data when left out.
    """

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in ARCHITECTURES:
            raise ValueError(f"unknown architecture '{v}'; choose one of {sorted(ARCHITECTURES)}")
        return v


class TrainingConfig(_Strict):
    """Every training hyperparameter, in one place (shared by all trained variants)."""

    epochs: int = Field(ge=1)
    """Passes over the training split."""
    batch_size: int = Field(default=128, ge=1)
    """Examples per optimizer step; the data order is reshuffled each epoch from the member seed."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(default=0.1, gt=0)
    """Peak learning rate."""
    momentum: float = Field(default=0.9, ge=0, lt=1)
    """SGD momentum (ignored by Adam)."""
    nesterov: bool = False
    weight_decay: float = Field(default=0.0, ge=0)
    """L2 penalty, applied by the optimizer to every parameter."""
    lr_schedule: Literal["constant", "cosine", "step"] = "cosine"
    """Per-step learning rate: constant, cosine decay to 0, or step decay at ``lr_milestones``."""
    lr_milestones: list[int] = Field(default_factory=list)
    """Epochs at which the ``step`` schedule multiplies the rate by ``lr_gamma``."""
    lr_gamma: float = Field(default=0.1, gt=0, le=1)
    warmup_steps: int = Field(default=0, ge=0)
    """Linear warm-up from 0 over this many steps."""
    eval_batch_size: int = Field(default=1024, ge=1)
    eval_train: bool = False
    """Also evaluate each member on the training split (``train_top1`` in the
    manifest). Off by default: it costs about one more epoch of training."""


class PruneConfig(_Strict):
    """Gradual magnitude pruning on the cubic schedule of Zhu & Gupta (2017).

    The sparsity rises from ``initial_sparsity`` at ``begin_step`` to
    ``sparsity`` at ``end_step`` (optimizer steps), re-computing the mask every
    ``frequency`` steps; it is reached exactly at ``end_step`` and then fixed.
    """

    method: str = "magnitude"
    sparsity: float = Field(gt=0, lt=1)
    """Target fraction of pruned weights (of pruned units when ``structure: structured``)."""
    initial_sparsity: float = Field(default=0.0, ge=0, lt=1)
    begin_step: int = Field(default=0, ge=0)
    end_step: int = Field(ge=1)
    """Step at which the target is reached; must not exceed the run's total steps."""
    frequency: int = Field(default=100, ge=1)
    """Steps between mask updates."""
    scope: Literal["global", "layer"] = "global"
    """Rank magnitudes across all pruned layers, or within each layer."""
    structure: Literal["unstructured", "structured"] = "unstructured"
    """Single weights, or whole output neurons / conv filters ranked by L2 norm."""
    skip: list[str] = Field(default_factory=list)
    """Module names (fnmatch patterns) left dense, e.g. ``["classifier.4"]``; default none."""


class QuantizeConfig(_Strict):
    """Post-training quantization of another variant's trained members."""

    method: str
    """onnx-dynamic | onnx-static | torch-dynamic | fp16 (or a plugin's name)."""
    calibration_examples: int = Field(default=256, ge=1)
    """Training examples drawn (seeded) to calibrate activation ranges (onnx-static)."""
    seed: int = Field(default=0, ge=0)
    """Seed of the calibration draw."""
    per_channel: bool = False
    """Per-channel weight scales (onnx-static)."""


class InfluenceConfig(_Strict):
    """Subsampled runs for Feldman & Zhang's memorization and influence estimates.

    Run ``r`` trains one model of ``variant`` (its architecture, training and
    pruning settings) on ``round(subset_fraction * |S|)`` training examples
    drawn without replacement (an exact-size subset, as in Feldman & Zhang
    2020), then records which examples it saw and which training and
    evaluation examples it classifies correctly. The draw and the model's
    seed come from ``numpy.random.SeedSequence([seed, r])``.
    """

    runs: int = Field(ge=2, le=100_000)
    """Number of subsampled runs ``R`` (the standard error falls as ``1 / sqrt(R)``)."""
    subset_fraction: float = Field(gt=0, lt=1)
    """Fraction ``p`` of the training split each run trains on."""
    seed: int = Field(default=0, ge=0)
    """Base seed of the subsets and of the runs' initialisation and data order."""
    variant: str
    """A variant trained from scratch (``dense``, or ``prune`` without ``from``)."""


class VariantConfig(_Strict):
    """One population: how its K members are made."""

    name: str = Field(pattern=_NAME_PATTERN)
    kind: Literal["dense", "prune", "quantize"]
    from_: str | None = Field(default=None, alias="from")
    """Variant whose trained members this one starts from (required for quantize)."""
    prune: PruneConfig | None = None
    quantize: QuantizeConfig | None = None
    epochs: int | None = Field(default=None, ge=1)
    """Override of ``training.epochs`` for this variant (e.g. fine-tuning after ``from``)."""
    seed: int | None = Field(default=None, ge=0)
    """Base seed of this variant's members (member i: ``seed + i``); default: the
    recipe's, so member i of every variant starts from the same initialisation and data
    order (paired by construction). Distinct seeds make independent populations, as
    population comparisons assume (Hooker et al. retrain every population)."""

    def fingerprint_form(self) -> dict[str, Any]:
        """The variant as its fingerprint reads it (``seed`` only when set, so the
        fingerprints of runs made before the key existed are unchanged)."""
        return self.model_dump(
            mode="json", by_alias=True, exclude=None if self.seed is not None else {"seed"}
        )


class Recipe(_Strict):
    """A population experiment. Build with :func:`load_recipe` or :func:`recipe_from_dict`."""

    name: str = Field(pattern=_NAME_PATTERN)
    description: str = ""
    dataset: DatasetConfig
    architecture: ArchitectureConfig
    training: TrainingConfig
    k: int = Field(ge=1, le=10_000)
    """Members per variant (the paper uses 30)."""
    seed: int = Field(default=0, ge=0)
    """Member i of a variant uses seed ``seed + i`` (initialisation and data order) unless
    the variant sets its own ``seed``."""
    reference: str | None = None
    """Variant audited against all others; default: the first dense variant."""
    variants: list[VariantConfig] = Field(min_length=1)
    influence: InfluenceConfig | None = None
    """Subsampled runs for memorization and influence estimates (none by default)."""

    @property
    def reference_variant(self) -> str:
        """Name of the reference variant."""
        if self.reference is not None:
            return self.reference
        return next(v.name for v in self.variants if v.kind == "dense")

    def variant(self, name: str) -> VariantConfig:
        """The variant called ``name``."""
        return next(v for v in self.variants if v.name == name)

    def to_dict(self) -> dict[str, Any]:
        """JSON form, with the YAML key names (``from``)."""
        return self.model_dump(mode="json", by_alias=True)

    def variant_fingerprint(self, name: str) -> str:
        """sha256 of everything that determines the members of variant ``name``.

        Covers data, architecture, training, seed and the variant chain it
        derives from, but not ``k`` or other variants: adding a variant or
        raising ``k`` lets an existing run directory resume.
        """
        chain: list[dict[str, Any]] = []
        cur: str | None = name
        while cur is not None:
            v = self.variant(cur)
            chain.append(v.fingerprint_form())
            cur = v.from_
        blob = {
            "dataset": self.dataset.model_dump(mode="json"),
            "architecture": self.architecture.model_dump(mode="json"),
            # What is evaluated does not change the members (and leaving it out
            # keeps the fingerprints of runs made before the key existed).
            "training": self.training.model_dump(mode="json", exclude=_NOT_FINGERPRINTED),
            "seed": self.seed,
            "chain": chain,
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

    def influence_fingerprint(self) -> str | None:
        """sha256 of everything that determines the influence runs (not their number).

        The variant's fingerprint plus the subset fraction and seed: raising
        ``influence.runs`` lets a run directory resume. None without the section.
        """
        cfg = self.influence
        if cfg is None:
            return None
        blob = {
            "variant": self.variant_fingerprint(cfg.variant),
            "subset_fraction": cfg.subset_fraction,
            "seed": cfg.seed,
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()

    def order(self) -> list[VariantConfig]:
        """Variants with every ``from`` source before the variants derived from it.

        Variants on a ``from`` cycle (or derived from a missing one) are left
        out; validation reports them, so a validated recipe lists them all.
        """
        done: list[VariantConfig] = []
        names: set[str] = set()
        pending = list(self.variants)
        while pending:
            ready = [v for v in pending if v.from_ is None or v.from_ in names]
            if not ready:
                break  # a cycle: nothing left can ever become ready
            done += ready
            names |= {v.name for v in ready}
            pending = [v for v in pending if v.name not in names]
        return done


def _semantic_errors(r: Recipe) -> list[tuple[tuple[str | int, ...], str]]:
    """Cross-field checks pydantic cannot express per field, with their key paths."""
    errs: list[tuple[tuple[str | int, ...], str]] = []
    names = [v.name for v in r.variants]
    by_name = {v.name: v for v in r.variants}
    for i, v in enumerate(r.variants):
        at: tuple[str | int, ...] = ("variants", i)
        if names.index(v.name) != i:
            errs.append(
                ((*at, "name"), f"variant name '{v.name}' is used twice; names must differ")
            )
        if v.kind == "prune" and v.prune is None:
            errs.append(((*at, "prune"), "a prune variant needs a 'prune' section"))
        if v.kind == "quantize" and v.quantize is None:
            errs.append(((*at, "quantize"), "a quantize variant needs a 'quantize' section"))
        if v.kind == "quantize" and v.from_ is None:
            errs.append(((*at, "kind"), "a quantize variant needs 'from: <variant>' to quantize"))
        if v.kind != "prune" and v.prune is not None:
            errs.append(((*at, "prune"), f"only prune variants take 'prune' (kind is {v.kind})"))
        if v.kind != "quantize" and v.quantize is not None:
            errs.append(((*at, "quantize"), f"only quantize variants take 'quantize' ({v.kind})"))
        if v.kind == "dense" and v.from_ is not None:
            errs.append(((*at, "from"), "a dense variant trains from scratch; remove 'from'"))
        if v.kind == "quantize" and v.epochs is not None:
            errs.append(((*at, "epochs"), "a quantize variant does not train; remove 'epochs'"))
        if v.from_ is not None:
            src = by_name.get(v.from_)
            if src is None:
                errs.append(((*at, "from"), f"no variant named '{v.from_}'; choose from {names}"))
            elif src.kind == "quantize":
                errs.append(((*at, "from"), f"'{v.from_}' is quantized; derive from a float one"))
            elif v.from_ == v.name:
                errs.append(((*at, "from"), "a variant cannot derive from itself"))
        if v.prune is not None:
            p = v.prune
            if p.end_step <= p.begin_step:
                errs.append(((*at, "prune", "end_step"), "end_step must be after begin_step"))
            if p.initial_sparsity >= p.sparsity:
                errs.append(
                    ((*at, "prune", "initial_sparsity"), "initial_sparsity must be below sparsity")
                )
        if v.prune is not None and v.prune.method != "magnitude":
            from compaudit.train.registry import pruners  # plugins may add methods

            if v.prune.method not in pruners():
                errs.append(
                    (
                        (*at, "prune", "method"),
                        f"unknown method '{v.prune.method}'; choose one of {sorted(pruners())}",
                    )
                )
        if v.quantize is not None and v.quantize.method not in BUILTIN_QUANTIZERS:
            from compaudit.train.registry import quantizers  # plugins may add methods

            if v.quantize.method not in quantizers():
                errs.append(
                    (
                        (*at, "quantize", "method"),
                        f"unknown method '{v.quantize.method}'; choose one of "
                        f"{sorted(set(BUILTIN_QUANTIZERS) | set(quantizers()))}",
                    )
                )
    if r.dataset.name is None and "train" not in r.dataset.model_fields_set:
        errs.append(
            (("dataset", "name"), "give a dataset name, or whole data specs as 'train' and 'eval'")
        )
    dense = [v.name for v in r.variants if v.kind == "dense"]
    if r.reference is not None:
        if r.reference not in by_name:
            errs.append((("reference",), f"no variant named '{r.reference}'; choose from {names}"))
    elif not dense:
        errs.append((("variants",), "no dense variant; add one or name a 'reference' variant"))
    if r.influence is not None:
        src = by_name.get(r.influence.variant)
        at = ("influence", "variant")
        if src is None:
            errs.append((at, f"no variant named '{r.influence.variant}'; choose from {names}"))
        elif src.kind == "quantize" or src.from_ is not None:
            errs.append((at, ERR_INFLUENCE_VARIANT.format(variant=src.name)))
    cycle = _from_cycle(r.variants)
    if cycle:
        at = ("variants", names.index(cycle[0]), "from")
        errs.append((at, ERR_CYCLE.format(chain=" -> ".join([*cycle, cycle[0]]))))
    return errs


def _from_cycle(variants: Sequence[VariantConfig]) -> list[str]:
    """The first cycle of two or more variants linked by ``from``, in link order (or [])."""
    links = {v.name: v.from_ for v in variants}
    for v in variants:
        chain: list[str] = []
        cur: str | None = v.name
        while cur is not None and cur in links and cur not in chain:
            chain.append(cur)
            cur = links[cur]
        # A self-link has its own message; a chain that ends at a missing name is no cycle.
        if cur is not None and cur in chain and len(chain) - chain.index(cur) > 1:
            return chain[chain.index(cur) :]
    return []


def _format(src: str, loc: Sequence[str | int], problem: str, line: int | None) -> str:
    key = key_name(loc)
    if line is None:
        return ERR_KEY_NOLINE.format(src=src, key=key, problem=problem)
    return ERR_KEY.format(src=src, line=line, key=key, problem=problem)


def _problem(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "unknown key; check its spelling against the recipe reference"
    if kind == "missing":
        return "required key is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def recipe_from_dict(
    data: Any, *, source: str = "<recipe>", node: yaml.Node | None = None
) -> Recipe:
    """Validate a recipe given as a mapping.

    Parameters
    ----------
    data : mapping
        The parsed recipe.
    source : str
        File name used in error messages.
    node : yaml.Node, optional
        The composed YAML document, to put line numbers in messages.

    Raises
    ------
    InputError
        Every problem, each naming file, line and key and what is wrong, in one
        line (joined by :data:`compaudit.errors.PROBLEM_SEP`).
    """
    if not isinstance(data, Mapping):
        raise InputError(ERR_NOT_MAPPING.format(src=source, kind=type(data).__name__))
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
            lines.append(_format(source, loc, _problem(err), line_of(node, loc)))
        raise InputError(PROBLEM_SEP.join(lines)) from None
    problems = _semantic_errors(recipe)
    if problems:
        raise InputError(
            PROBLEM_SEP.join(_format(source, loc, msg, line_of(node, loc)) for loc, msg in problems)
        )
    return recipe


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe YAML file (fails closed with ``InputError``)."""
    p = Path(path)
    src = str(path)
    if not p.is_file():
        raise InputError(ERR_MISSING_FILE.format(src=src))
    try:
        text = read_text(p, kind="recipe")  # bounded: at most MAX_BYTES are read
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start]
        raise InputError(ERR_ENCODING.format(src=src, byte=byte, offset=exc.start)) from None
    except (OSError, YamlLimitError) as exc:
        raise InputError(ERR_UNREADABLE.format(src=src, problem=exc)) from None
    try:
        doc = load_yaml(text)  # bounded depth and alias expansion (issue 11)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        raise InputError(ERR_YAML.format(src=src, line=line, problem=exc.problem)) from None
    except yaml.YAMLError as exc:
        raise InputError(ERR_YAML.format(src=src, line=0, problem=problem_line(exc))) from None
    if doc.duplicates:
        raise InputError(
            PROBLEM_SEP.join(_format(src, loc, ERR_DUPLICATE, line) for loc, line in doc.duplicates)
        )
    return recipe_from_dict(doc.data, source=src, node=doc.node)


@functools.lru_cache(maxsize=4)
def _load(spec: str, train_spec: str | None = None) -> Dataset:
    from compaudit.data.loading import load_dataset

    if train_spec is None:  # training data: preprocessing (a CSV encoding) is fitted here
        return load_dataset(spec, fit=True)
    # Evaluation data get the training data's preprocessing, never one fitted on themselves.
    return load_dataset(
        spec, prep=_load(train_spec).preprocessing, prep_source=f"the training data {train_spec}"
    )


def load_data(recipe: Recipe) -> tuple[Dataset, Dataset]:
    """The recipe's (train, eval) datasets, cached per process (members and
    influence runs of one worker share them). The eval split is prepared with
    the train split's preprocessing (fitted on train)."""
    train_spec = recipe.dataset.spec(recipe.dataset.train)
    return _load(train_spec), _load(recipe.dataset.spec(recipe.dataset.eval), train_spec)
