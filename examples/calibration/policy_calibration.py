"""The shipped policies on seed noise and on planted damage (issue 9, item 5).

A seed-only comparison audits a reference group of members against a
*disjoint* candidate group of the same recipe: nothing but seeds differs, so
every policy should pass it. A planted-damage comparison takes the same
candidate group and makes it forget on purpose, in every member:

* ``class``: a fraction of one class's correctly classified examples turned wrong;
* ``group``: a fraction of one small subgroup's correct examples turned wrong.

Every comparison goes through :func:`compaudit.audit` with the policy, which
resolves the policy's audit settings and evaluates its gates exactly as
``compaudit check`` does; a candidate's verdict is decided from its gates by
the command's rule (:func:`candidate_verdict`). The damaged candidates of one
draw are audited together with the seed-only one (one comparison each;
corrections are per comparison).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from calibration_nulls import (
    load_members,
    members,
    policy_draws,
    random_group,
    smallest_cell,
    train_population,
)
from calibration_tables import (
    pct,
    policy_section,
    policy_verdict,
)
from planted_damage import plant_damage
from policy_cache import (
    Judgement,
    VerdictCache,
    draw_key,
    map_draws,
    population_digest,
    source_fingerprint,
)
from policy_figure import power_figure

import compaudit
from compaudit import GateResult, Policy, Population, load_policy

DamageKind = Literal["none", "class", "group"]
GROUP_ATTRIBUTE = "planted_group"  # the random group's attribute on data without real ones
GROUP_VALUES = ("rest", "planted")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
POLICIES = ROOT / "examples" / "policies"
ADULT_RECIPE = HERE / "recipe-adult.yaml"
ADULT_MEMBERS = 20
ADULT_GROUP_MIN = 50  # the planted Adult group: the smallest sex x race cell this large
FRACTIONS = (0.03, 0.1, 0.3)  # planted damage: share of the target's correct examples lost
MAIN = 0.3  # the magnitude the 90% fail target applies to


# -- policies ------------------------------------------------------------------------------
def shipped_policies(directory: Path) -> dict[str, tuple[Path, Policy]]:
    """Every ``*.yaml`` policy in ``directory``, by file stem, in name order."""
    return {p.stem: (p, load_policy(p)) for p in sorted(directory.glob("*.yaml"))}


def needed_attributes(policy: Policy) -> set[str]:
    """Attributes the policy's subgroup analysis needs (every attribute set it names)."""
    sub = policy.gates.subgroups
    return {a for s in (sub.sets() if sub is not None else []) for a in s}


def applies(policy: Policy, attributes: Sequence[str]) -> bool:
    """Whether the data (carrying ``attributes``) have every attribute the policy gates."""
    return needed_attributes(policy) <= {*attributes, "label"}


# -- running ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Damage:
    """One candidate scenario: seed-only, or a kind of planted damage and its size."""

    kind: DamageKind
    fraction: float = 0.0

    @property
    def name(self) -> str:
        """Candidate name in the audit (never a policy override's name)."""
        return "seed-only" if self.kind == "none" else f"{self.kind}-{100 * self.fraction:g}pct"


@dataclass
class Cell:
    """Outcomes of one (dataset, shape, damage, policy) over D draws."""

    dataset: str
    k_ref: int
    k_cand: int
    damage: Damage
    policy: str
    verdicts: list[str] = field(default_factory=list)
    failed: list[frozenset[str]] = field(default_factory=list)  # failed gates per draw
    errored: list[frozenset[str]] = field(default_factory=list)  # gates that could not be evaluated
    gates: tuple[str, ...] = ()  # every gate the policy evaluated

    @property
    def n(self) -> int:
        """Number of draws D."""
        return len(self.verdicts)

    @property
    def shape(self) -> str:
        """``K_r vs K_c``."""
        return f"{self.k_ref} vs {self.k_cand}"

    def rate(self, verdict: str) -> float:
        """Share of draws with ``verdict`` ('pass', 'fail', 'error')."""
        return sum(v == verdict for v in self.verdicts) / self.n

    def gate_rate(self, gate: str) -> float:
        """Share of draws in which ``gate`` failed (or could not be evaluated)."""
        return (
            sum(gate in f or gate in e for f, e in zip(self.failed, self.errored, strict=True))
            / self.n
        )


@dataclass(frozen=True)
class Setup:
    """One dataset's population and what is planted into it."""

    dataset: str
    population: Population
    group: np.ndarray  # bool [N]: the small group, or all False for a per-draw random group
    group_size: int = 50  # size of the random group when ``group`` is empty


@dataclass(frozen=True)
class DrawState:
    """What every draw of one (dataset, shape) shares; sent once to each worker process."""

    setup: Setup
    ref_rows: np.ndarray  # [D, K_ref]
    cand_rows: np.ndarray  # [D, K_cand]
    policies: Mapping[str, tuple[Path, Policy]]
    damages: tuple[Damage, ...]
    seed: int
    cache: VerdictCache | None = None
    code: str = ""  # compaudit's source fingerprint (part of every cache key)
    policy_bytes: Mapping[str, bytes] = field(default_factory=dict)


def draw_candidates(state: DrawState, i: int) -> tuple[Population, dict[str, Population]]:
    """Draw ``i``'s reference group and its seed-only and damaged candidates.

    The class damage goes into one random class and, without a real group, the
    group damage into a random group of ``setup.group_size`` examples carried as
    the attribute :data:`GROUP_ATTRIBUTE` (so subgroup analyses can see it).
    """
    setup = state.setup
    pop = setup.population
    k_ref, k_cand = state.ref_rows.shape[1], state.cand_rows.shape[1]
    real_group = bool(setup.group.any())
    y = pop.y.astype(np.intp)
    rng_seed = [state.seed, k_ref, k_cand, i]
    target_class = int(np.random.default_rng([*rng_seed, 0]).integers(pop.num_classes))
    group = setup.group if real_group else random_group(pop.n, setup.group_size, [*rng_seed, 1])
    base = pop if real_group else pop.with_attributes({GROUP_ATTRIBUTE: _group_values(group)})
    rows = state.cand_rows[i]
    cand = base.predictions[rows]
    candidates = {}
    for d in state.damages:
        preds = cand
        if d.kind != "none":
            target = y == target_class if d.kind == "class" else group
            seed_d = [*rng_seed, 2 if d.kind == "class" else 3]
            preds = plant_damage(
                cand, y, target, d.fraction, num_classes=pop.num_classes, seed=seed_d
            )
        candidates[d.name] = members(base, rows, preds)
    return members(base, state.ref_rows[i]), candidates


def judge_draw(state: DrawState, i: int) -> dict[tuple[str, str], Judgement]:
    """:func:`judge` of draw ``i`` under every policy of ``state``, reusing the cached
    judgements of policies whose inputs (policy bytes, populations, seed, code) are
    unchanged and caching the others."""
    reference, candidates = draw_candidates(state, i)
    if state.cache is None:
        return judge(reference, candidates, state.policies)
    k_ref, k_cand = state.ref_rows.shape[1], state.cand_rows.shape[1]
    ref_digest = population_digest(reference)
    cand_digests = {name: population_digest(c) for name, c in candidates.items()}
    keys = {
        name: draw_key(
            code=state.code,
            policy_bytes=state.policy_bytes[name],
            reference=ref_digest,
            candidates=cand_digests,
            draw_seed=[state.seed, k_ref, k_cand, i],
        )
        for name in state.policies
    }
    out: dict[tuple[str, str], Judgement] = {}
    todo: dict[str, tuple[Path, Policy]] = {}
    for name, pp in state.policies.items():
        hit = state.cache.get(keys[name])
        if hit is not None and set(hit) == set(candidates):
            out.update({(cand, name): j for cand, j in hit.items()})
        else:
            todo[name] = pp
    if todo:
        judged = judge(reference, candidates, todo)
        out.update(judged)
        for name in todo:
            state.cache.put(keys[name], {cand: judged[(cand, name)] for cand in candidates})
    return out


def run_cells(
    setup: Setup,
    draws: tuple[np.ndarray, np.ndarray],
    policies: Mapping[str, tuple[Path, Policy]],
    damages: Sequence[Damage],
    *,
    seed: int,
    progress: bool = False,
    jobs: int = 1,
    cache: VerdictCache | None = None,
) -> list[Cell]:
    """Audit every draw's seed-only and damaged candidates under every applicable policy.

    Draws are planted as :func:`draw_candidates` says and judged by
    :func:`judge_draw` (``jobs`` processes; with ``cache``, finished draws are
    read back instead of audited again). Returns one :class:`Cell` per
    (damage, policy), in that order; the outcome does not depend on ``jobs``
    or on the cache.
    """
    from rich.progress import track

    pop = setup.population
    ref_rows, cand_rows = draws
    real_group = bool(setup.group.any())
    attrs = [*pop.attributes] if real_group else [*pop.attributes, GROUP_ATTRIBUTE]
    chosen = {name: pp for name, pp in policies.items() if applies(pp[1], attrs)}
    k_ref, k_cand = ref_rows.shape[1], cand_rows.shape[1]
    cells = {(d, p): Cell(setup.dataset, k_ref, k_cand, d, p) for d in damages for p in chosen}
    state = DrawState(
        setup,
        ref_rows,
        cand_rows,
        chosen,
        tuple(damages),
        seed,
        cache,
        source_fingerprint() if cache is not None else "",
        {name: path.read_bytes() for name, (path, _) in chosen.items()},
    )
    label = f"{setup.dataset}, {k_ref} vs {k_cand}"
    results = map_draws(judge_draw, state, len(ref_rows), jobs=jobs)
    for judged in track(
        results, total=len(ref_rows), description=label, disable=not progress, transient=True
    ):
        for (d, name), cell in cells.items():
            verdict, failed, errored, cell.gates = judged[(d.name, name)]
            cell.verdicts.append(verdict)
            cell.failed.append(failed)
            cell.errored.append(errored)
    return list(cells.values())


def candidate_verdict(gates: Sequence[GateResult]) -> str:
    """What ``compaudit check`` would decide for one candidate from its gates:
    ``error`` if one could not be evaluated or none was (all skipped), else ``fail`` if
    one failed, else ``pass`` (skipped gates count for neither)."""
    evaluated = any(g.status in ("passed", "failed") for g in gates)
    if not evaluated or any(g.status == "error" for g in gates):
        return "error"
    return "fail" if any(g.status == "failed" for g in gates) else "pass"


def judge(
    reference: Population,
    candidates: Mapping[str, Population],
    policies: Mapping[str, tuple[Path, Policy]],
) -> dict[tuple[str, str], Judgement]:
    """What ``compaudit check`` decides for each (candidate, policy): the verdict, the
    gates that failed, the gates that could not be evaluated, and every gate evaluated.

    One :func:`compaudit.audit` per policy (all candidates in it, one comparison
    each), then one verdict per candidate from its gates.
    """
    out: dict[tuple[str, str], Judgement] = {}
    for name, (_, policy) in policies.items():
        report = compaudit.audit(reference, candidates, policy=policy)
        for cand in candidates:
            mine = [g for g in report.gates if g.candidate == cand]
            out[(cand, name)] = (
                candidate_verdict(mine),
                frozenset(g.name for g in mine if g.status == "failed"),
                frozenset(g.name for g in mine if g.status == "error"),
                tuple(g.name for g in mine),
            )
    return out


def _group_values(mask: np.ndarray) -> np.ndarray:
    return np.where(mask, GROUP_VALUES[1], GROUP_VALUES[0])


# -- the study's part -------------------------------------------------------------------------
DAMAGES = (
    Damage("none"),
    *(Damage("class", f) for f in FRACTIONS),
    *(Damage("group", f) for f in FRACTIONS),
)


def adult_population(
    run_dir: Path, *, train: bool, jobs: int, progress: bool, shown: str
) -> tuple[Population | None, str]:
    """The Adult seed-only population (trained, resuming, when the data can be found)."""
    if train:
        try:
            compaudit.load_dataset("adult:test")
        except compaudit.CompauditError as exc:
            return None, f"skipped: {exc}"
        train_population(ADULT_RECIPE, run_dir, jobs, progress)
    return load_members(run_dir, ADULT_MEMBERS, shown=shown)


def policy_part(
    digits: Population,
    fmnist: tuple[Population | None, str],
    adult: tuple[Population | None, str],
    *,
    resamples: int,
    seed: int,
    figure: Path,
    progress: bool,
    jobs: int = 1,
    cache: VerdictCache | None = None,
) -> tuple[str, tuple[bool, list[str]]]:
    """Every shipped policy on seed-only and planted-damage comparisons of each data set:
    the RESULTS.md section (tables and figure) and the verdict. ``fmnist`` and
    ``adult`` are a population or None, and a note (why not). Draws run on ``jobs``
    processes; with ``cache``, a re-run reads finished draws back (:func:`run_cells`)."""
    policies = shipped_policies(POLICIES)
    setups = [(Setup("digits", digits, np.zeros(digits.n, dtype=bool)), ((10, 5), (10, 1)))]
    fm_pop, fm_note = fmnist
    skipped = [] if fm_pop is not None else [f"Fashion-MNIST was not run ({fm_note})."]
    if fm_pop is not None:
        none = np.zeros(fm_pop.n, dtype=bool)
        setups.append((Setup("Fashion-MNIST", fm_pop, none), ((6, 3), (6, 1))))
    adult_pop, adult_note = adult
    adult_line = f"- Adult: not run ({adult_note})."
    if adult_pop is None:
        skipped.append(f"Adult was not run ({adult_note}).")
    if adult_pop is not None:
        mask, label = smallest_cell(adult_pop.attributes, ("sex", "race"), ADULT_GROUP_MIN)
        setups.append((Setup("Adult", adult_pop, mask), ((10, 5), (10, 1))))
        top1 = (adult_pop.predictions == adult_pop.y).mean(axis=1)
        adult_line = (
            f"- Adult: {adult_note}; `{ADULT_RECIPE.relative_to(ROOT)}` (the dense variant of "
            f"`examples/recipes/adult.yaml` with k = {ADULT_MEMBERS}), top-1 "
            f"{pct(float(top1.mean()))} +/- {100 * top1.std(ddof=1):.2f} points. The planted "
            f"group is the smallest sex x race group with at least {ADULT_GROUP_MIN} "
            f"examples: {label} (n = {int(mask.sum())})."
        )
    cells: list[Cell] = []
    for setup, shapes in setups:
        for k_ref, k_cand in shapes:
            draws = policy_draws(setup.population.k, k_ref, k_cand, resamples, seed)
            cells += run_cells(
                setup,
                draws,
                policies,
                DAMAGES,
                seed=seed,
                progress=progress,
                jobs=jobs,
                cache=cache,
            )
    written = power_figure(cells, figure)
    names = ", ".join(f"`{p}`" for p in policies)
    sizes = ", ".join(f"{100 * f:g}%" for f in FRACTIONS)
    text = "\n".join(
        [
            f"- Policies: every `examples/policies/*.yaml` ({names}) on every data set that "
            "carries the attributes it gates (`fairness-review`: sex and race, Adult only). "
            "Candidates are named `seed-only`, `class-<x>pct` and `group-<x>pct`, so no "
            "per-candidate override (such as `int8`) applies.",
            f"- Draws: per shape (K_ref vs K_cand), up to {resamples} distinct seeded draws "
            f"(seed {seed}) of a reference group and a disjoint candidate group of members, "
            "all of them where there are fewer. K_ref >= 2 K_cand, so seed-noise floors can "
            "be estimated. Fashion-MNIST has 10 members: 6 vs 3 and 6 vs 1.",
            f"- Planted damage, in every candidate member, at {sizes} ({100 * MAIN:g}% is "
            "the magnitude the target applies to): *one class* (a random class per draw) or "
            "*one small group* loses that share of the member's correctly classified "
            "examples, each turned into a random wrong label. The same examples in every "
            "member (one seeded order per draw: compression forgets systematically); a "
            "larger damage contains the smaller one; top-k rows follow the new top-1. "
            f"{100 * MAIN:g}% is damage no review may miss (a digit class of ~54 loses ~15 "
            "examples, the Adult group of 59 about 16); the smaller sizes trace the power "
            "curve (3%: one or two examples of a digit class, about 27 of a Fashion-MNIST "
            "class, two of the Adult group).",
            f"- digits (N = {digits.n}) and Fashion-MNIST: the group is a random "
            f"{setups[0][0].group_size} examples per draw, carried as the attribute "
            f"`{GROUP_ATTRIBUTE}` (no shipped policy gates it).",
            adult_line,
        ]
    )
    section = policy_section(cells, setup=text, main=MAIN, figure=f"figures/{written.name}")
    ok, misses = policy_verdict(cells, MAIN)
    return section, (ok and not skipped, [*skipped, *misses])
