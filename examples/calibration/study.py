"""Calibration study: do the tests and the shipped policies fail on seed noise? (issues 6, 9)

Forty dense MLPs on digits differ only in their seeds. Any two disjoint groups
of them are two populations "trained the same way with different seeds", so
every class the audit flags between them is a false alarm. The study audits
many such comparisons with :func:`compaudit.audit` under each p-value
correction and counts how often at least one class is flagged (the
family-wise false alarm rate, FWER):

* populations (Welch, the paper's test): K = 5 and K = 10 members a side,
  many seeded resamples, plus the few fully disjoint splits (independent draws);
* one model a side (the single-model test of the CI case): every pair of
  members, next to the *rejected alternative*, an unstudentized permutation z-test;
* the PIE / CIE rates and the strict-release policy's gates on the same null
  comparisons: the noise floor a threshold must sit above;
* every shipped policy (examples/policies/*.yaml) on seed-only comparisons
  (must pass >= 95%) and on planted one-class and small-subgroup damage (must
  fail >= 90% where it gates that damage), on digits, Fashion-MNIST and Adult
  (policy_calibration.py).

The same on the first 10 dense members of ``runs/fashion-mnist`` (all 126
distinct 5-vs-5 splits and all 45 pairs); when that run does not exist and the
data can be found, the dense variant of the Fashion-MNIST study's recipe is
trained there first (the same members that study trains, 10-20 min on 2
cores). Adult's 20 seed-only MLPs (recipe-adult.yaml) are trained into
``runs/calibration-adult`` (resuming; a minute or two). Writes RESULTS.md and
figures/ next to this file.

    COMPAUDIT_DATA_DIR=../shared/data ./run study calibration [--resamples 1000]
        [--policy-resamples 200] [--seed 0] [--run-dir runs/calibration] [--jobs 2]
        [--datasets digits,fashion-mnist,adult] [--policy-cache runs/calibration-cache]

The policy tables' draws run on ``--jobs`` processes and are cached per draw and
policy under ``--policy-cache`` (policy_cache.py), so an interrupted study
resumes where it stopped; ``--datasets digits`` restricts the study to digits
(quick checks; its RESULTS.md then says what was not run).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from calibration_nulls import (
    ALPHA,
    NullRuns,
    all_pairs,
    all_splits,
    disjoint_draws,
    load_members,
    paired_spread,
    resample_draws,
    run_audits,
    run_naive,
    train_dense_if_missing,
    train_population,
)
from calibration_results import POLICY, rel, results_markdown, verdict
from calibration_tables import (
    class_table,
    fwer_figure,
    pct,
    pvalue_figure,
)
from policy_cache import VerdictCache
from policy_calibration import adult_population, policy_part

from compaudit import Population, load_policy
from compaudit.study import write_text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RECIPE = HERE / "recipe.yaml"
FMNIST_MEMBERS = 10
FMNIST_RECIPE = ROOT / "examples" / "recipes" / "fashion-mnist.yaml"
DATASETS = ("digits", "fashion-mnist", "adult")
NOT_SELECTED = "skipped: not selected (--datasets)"
ERR_DATASETS = "choose from {known} (digits always), got {got!r}"


def _datasets(text: str) -> tuple[str, ...]:
    """``--datasets`` as a tuple in :data:`DATASETS` order; digits is always in it."""
    given = {t.strip() for t in text.split(",") if t.strip()}
    if not given <= set(DATASETS) or "digits" not in given:
        raise argparse.ArgumentTypeError(ERR_DATASETS.format(known=", ".join(DATASETS), got=text))
    return tuple(d for d in DATASETS if d in given)


def main(argv: Sequence[str] | None = None) -> int:
    """Train (resuming), run every null comparison, write RESULTS.md and figures/."""
    parser = argparse.ArgumentParser(description="Calibration study (see RESULTS.md).")
    parser.add_argument("--run-dir", type=Path, default=ROOT / "runs" / "calibration")
    parser.add_argument("--fmnist-run-dir", type=Path, default=ROOT / "runs" / "fashion-mnist")
    parser.add_argument("--adult-run-dir", type=Path, default=ROOT / "runs" / "calibration-adult")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument(
        "--policy-resamples", type=int, default=200, help="draws per policy-table shape"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--jobs", type=int, default=1, help="processes for training and for the policy draws"
    )
    parser.add_argument(
        "--datasets",
        type=_datasets,
        default=DATASETS,
        help=f"comma-separated subset of {','.join(DATASETS)} (digits always runs: the null "
        "comparisons are on it); the others are then neither trained nor tabled",
    )
    parser.add_argument(
        "--policy-cache",
        type=Path,
        default=ROOT / "runs" / "calibration-cache",
        help="where each policy draw's verdicts are cached, so an interrupted study resumes",
    )
    parser.add_argument("--no-policy-cache", action="store_true", help="audit every draw afresh")
    parser.add_argument("--out", type=Path, default=HERE, help="where RESULTS.md and figures/ go")
    parser.add_argument("-q", "--quiet", action="store_true")
    parser.add_argument(
        "--no-fmnist-training",
        action="store_true",
        help="do not train the dense Fashion-MNIST population when it is missing "
        "(its rows are then skipped, and RESULTS.md differs from the committed one)",
    )
    parser.add_argument(
        "--no-adult-training",
        action="store_true",
        help="do not train the Adult seed-only population (its rows are skipped when missing)",
    )
    args = parser.parse_args(argv)
    progress = not args.quiet
    start = time.perf_counter()

    policy = load_policy(POLICY)  # its settings are what `compaudit check --policy` uses
    pop = train_population(RECIPE, args.run_dir, args.jobs, progress)
    n = pop.k

    def audits(p: Population, draws: np.ndarray, label: str) -> NullRuns:
        return run_audits(p, draws, label, policy, progress=progress)

    samples = args.resamples
    welch = [
        audits(pop, resample_draws(n, k, samples, args.seed), f"digits, Welch K = {k}")
        for k in (5, 10)
    ]
    indep = [
        audits(pop, disjoint_draws(n, k, args.seed), f"digits, Welch K = {k}, disjoint")
        for k in (5, 10)
    ]
    pairs = all_pairs(n)
    paired = audits(pop, pairs, "digits, paired")
    naive = run_naive(pop, pairs, "digits, z-test (rejected)")
    indep.append(audits(pop, disjoint_draws(n, 1, args.seed), "digits, paired, disjoint"))
    classes = [("digits", class_table(pop, [welch[0], paired, naive]))]
    spread = {paired.label: paired_spread(pop, pairs)}

    use_fmnist = "fashion-mnist" in args.datasets
    if use_fmnist and not args.no_fmnist_training:
        train_dense_if_missing(
            FMNIST_RECIPE,
            args.fmnist_run_dir,
            "fashion-mnist:test?limit=1",
            jobs=args.jobs,
            progress=progress,
            note="10-20 min on 2 cores; --no-fmnist-training skips them",
        )
    fm_pop, fm_note = (
        load_members(args.fmnist_run_dir, FMNIST_MEMBERS, shown=rel(args.fmnist_run_dir))
        if use_fmnist
        else (None, NOT_SELECTED)
    )
    fm_why = fm_note
    fmnist: list[NullRuns] = []
    if fm_pop is not None:
        fm_splits, fm_pairs = all_splits(FMNIST_MEMBERS), all_pairs(FMNIST_MEMBERS)
        fmnist = [
            audits(fm_pop, fm_splits, "F-MNIST, Welch K = 5"),
            audits(fm_pop, fm_pairs, "F-MNIST, paired"),
        ]
        classes.append(("Fashion-MNIST", class_table(fm_pop, fmnist)))
        spread[fmnist[1].label] = paired_spread(fm_pop, fm_pairs)
        top1 = (fm_pop.predictions == fm_pop.y).mean(axis=1)
        fm_note = (
            f"Small CNNs ({fm_note}"
            f"), top-1 {pct(top1.mean())} +/- {100 * top1.std(ddof=1):.2f} points: all "
            f"{len(fm_splits)} distinct 5-vs-5 splits and all {len(fm_pairs)} one-vs-one "
            "pairs, in the tables above (rows 'F-MNIST'). Splits and pairs share members."
        )
    else:
        fm_note = (
            f"Not run ({fm_note}); train it with "
            "`compaudit train examples/recipes/fashion-mnist.yaml`."
        )

    top1 = (pop.predictions == pop.y).mean(axis=1)
    support = np.bincount(pop.y, minlength=pop.num_classes)
    setup = (
        f"- Models: {n} dense MLPs (`{rel(RECIPE)}`: the demo's architecture and training), "
        f"seeds 0-{n - 1}; nothing else differs. Top-1 {pct(top1.mean())} +/- "
        f"{100 * top1.std(ddof=1):.2f} points.\n"
        f"- Data: the digits test split, N = {pop.n}, {pop.num_classes} classes of "
        f"{support.min()}-{support.max()} examples.\n"
        f"- Population test (Welch on S = recall - top-1, the paper's): {samples} resamples "
        f"(seed {args.seed}) of two disjoint groups of K members, for K = 5 and K = 10; "
        f"plus one seeded partition into disjoint groups ({indep[0].draws} comparisons for "
        f"K = 5, {indep[1].draws} for K = 10).\n"
        f"- Single-model test (the CI case): all {len(pairs)} pairs of distinct "
        f"members, the lower seed as reference; {indep[2].draws} disjoint pairs as the "
        "independent subset.\n"
        f"- Each comparison is one `compaudit.engine.audit` call with `{rel(POLICY)}`'s "
        "settings, whose gates are read from its report; the classes each correction flags "
        f"at alpha = {ALPHA} are counted from its raw p-values exactly as the engine flags "
        "them (raw p-values do not depend on the correction). The rejected z-test is "
        "computed by the study on the same pairs."
    )
    figures = args.out / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    adult = (
        adult_population(
            args.adult_run_dir,
            train=not args.no_adult_training,
            jobs=args.jobs,
            progress=progress,
            shown=rel(args.adult_run_dir),
        )
        if "adult" in args.datasets
        else (None, NOT_SELECTED)
    )
    policy_text, policy_ok = policy_part(
        pop,
        (fm_pop, fm_why),
        adult,
        resamples=args.policy_resamples,
        seed=args.seed,
        figure=figures / "policies.png",
        progress=progress,
        jobs=args.jobs,
        cache=None if args.no_policy_cache else VerdictCache(args.policy_cache / "policies"),
    )
    command = (
        f"COMPAUDIT_DATA_DIR=<data> ./run study calibration --resamples {samples} "
        f"--policy-resamples {args.policy_resamples} --seed {args.seed}"
        + (f" --datasets {','.join(args.datasets)}" if args.datasets != DATASETS else "")
    )
    text = results_markdown(
        setup=setup,
        welch=[*welch, *fmnist[:1]],
        single=[paired, *fmnist[1:]],
        table_runs=[*welch, *indep, paired, naive, *fmnist],
        naive=naive,
        gate_runs=[*welch, paired, *fmnist],
        classes=classes,
        spread=spread,
        policy=policy,
        fmnist_note=fm_note,
        command=command,
        policy_text=policy_text,
        policy_verdict=policy_ok,
    )
    written = [
        pvalue_figure([*welch, paired, naive, *fmnist], figures / "pvalues.png"),
        fwer_figure([*welch, paired, naive, *fmnist], figures / "fwer.png"),
    ]
    results = args.out / "RESULTS.md"
    write_text(results, text)
    for path in [results, *written, figures / "policies.png"]:
        print(f"wrote {path}")
    for runs in ([*welch, *fmnist[:1]], [paired, *fmnist[1:]]):
        print("\n".join(verdict(runs)[1]))
    print("\n".join(policy_ok[1]) or "shipped policies: both targets met")
    print(f"done in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
