"""The tutorial's claims as a study: its plan (depth and batch-size grids over seeds) and its verdicts.

The tutorial says (1) more hidden layers did not help, and slowed learning, and (2) bigger batches
train faster at little cost in accuracy. A verdict counts a difference only beyond the seed-to-seed
spread.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from digitlab.analysis.metrics import mean_and_std
from digitlab.errors import ConfigError
from digitlab.sweeps.plan import Grid, SweepPlan
from digitlab.sweeps.summary import GroupSummary, Judge, Verdict

TUTORIAL_LAYERS = [(512,), (512, 512), (512, 512, 512)]
TUTORIAL_BATCH_SIZES = [64, 128, 256, 512, 1024]
STUDIES = ("tutorial-claims",)


def study_plan(name: str, seeds: int = 3, fixed: dict[str, Any] | None = None) -> SweepPlan:
    """A named study. 'tutorial-claims': 1, 2 and 3 hidden layers of 512; batch sizes 64 to 1024; 3 seeds."""
    if name != "tutorial-claims":
        raise ConfigError(f"unknown study {name!r}; choose one of: {', '.join(STUDIES)}")
    fixed = dict(fixed or {})
    # The tutorial's settings are TrainingConfig's defaults; each grid varies one of them.
    grids = [Grid("depth", {"hidden_units": list(TUTORIAL_LAYERS)}),
             Grid("batch size", {"batch_size": list(TUTORIAL_BATCH_SIZES)})]
    for grid in grids:
        clash = set(grid.factors) & set(fixed)
        if clash:
            raise ConfigError(f"the {name} study varies {', '.join(sorted(clash))} itself; leave that flag out")
    return SweepPlan(name=name, grids=grids, fixed=fixed, seeds=list(range(seeds)), study=name)


def judge(study: str | None) -> Judge | None:
    """What turns the study's configurations into its verdicts; None for a plain grid (no claims to judge)."""
    return tutorial_claims_verdicts if study == "tutorial-claims" else None


def compare_means(first: Sequence[float], second: Sequence[float]) -> int:
    """+1 if `second`'s mean is above `first`'s by more than the seed spread, -1 if below by more, else 0.

    The seed spread is the larger of the two sample standard deviations.
    """
    first_mean, first_std = mean_and_std(first)
    second_mean, second_std = mean_and_std(second)
    spread = max(first_std, second_std)
    difference = second_mean - first_mean
    if abs(difference) <= spread:
        return 0
    return 1 if difference > 0 else -1


DEPTH_CLAIM = "Claim 1: more hidden layers did not help, and slowed learning."
BATCH_CLAIM = "Claim 2: bigger batches train faster, at little cost in accuracy."
# "Little cost": the biggest batch ends at most this many points of test accuracy below the smallest.
LITTLE_COST_POINTS = 0.5
_ANSWERS = {2: "Supported", 1: "Partly supported", 0: "Not supported"}


def depth_verdict(groups: Sequence[GroupSummary]) -> Verdict:
    """The tutorial's depth claim, from deeper networks against the shallowest one.

    Two parts, each judged beyond the seed-to-seed spread: no deeper network is more accurate
    ("did not help"), and the deepest takes longer to train ("slowed learning"). Supported when
    both hold, partly when one does, not supported when neither does.
    """
    measured = sorted((group for group in groups if group.test_accuracy),
                      key=lambda group: len(group.settings["hidden_units"]))
    if len(measured) < 2:
        return Verdict(DEPTH_CLAIM, "Not measured", "Fewer than two depths have finished trials.")
    base, deeper = measured[0], measured[1:]
    outcomes = [compare_means(base.test_accuracy, group.test_accuracy) for group in deeper]
    base_mean, _ = mean_and_std(base.test_accuracy)
    spread = max(mean_and_std(group.test_accuracy)[1] for group in measured) * 100
    details = "; ".join(f"{_layers(group)}: {mean_and_std(group.test_accuracy)[0]:.2%} "
                        f"({(mean_and_std(group.test_accuracy)[0] - base_mean) * 100:+.2f} points)" for group in deeper)
    facts = f"{_layers(base)}: {base_mean:.2%}; {details}; the seed-to-seed spread is up to {spread:.2f} points."
    did_not_help = all(outcome <= 0 for outcome in outcomes)
    if all(outcome == 0 for outcome in outcomes):
        accuracy_text = "More layers did not help: the differences are within the seed-to-seed spread."
    elif did_not_help:
        accuracy_text = "More layers did not help: deeper networks were less accurate, by more than the seed spread."
    elif all(outcome >= 0 for outcome in outcomes):
        accuracy_text = "More layers helped, by more than the seed spread."
    else:
        accuracy_text = "Some added depth helped and some hurt."
    slower = compare_means(base.fit_seconds, deeper[-1].fit_seconds) > 0
    base_seconds, deepest_seconds = mean_and_std(base.fit_seconds)[0], mean_and_std(deeper[-1].fit_seconds)[0]
    ratio = f"{deepest_seconds / base_seconds:.1f}x" if base_seconds > 0 else "an unknown multiple of"
    time_text = (f"{_layers(deeper[-1])} took {ratio} the training time of {_layers(base)}"
                 + ("." if slower else ", not longer beyond the seed spread."))
    return Verdict(DEPTH_CLAIM, _ANSWERS[did_not_help + slower], f"{accuracy_text} {time_text} {facts}")


def batch_size_verdict(groups: Sequence[GroupSummary]) -> Verdict:
    """The tutorial's batch-size claim, from the smallest batch size against the biggest.

    Two parts: the biggest batch trains in less time (beyond the seed spread), and it costs little
    accuracy (at most LITTLE_COST_POINTS points below the smallest batch, or within the spread).
    Supported when both hold, partly when one does, not supported when neither does.
    """
    measured = sorted((group for group in groups if group.test_accuracy),
                      key=lambda group: group.settings["batch_size"])
    if len(measured) < 2:
        return Verdict(BATCH_CLAIM, "Not measured", "Fewer than two batch sizes have finished trials.")
    small, big = measured[0], measured[-1]
    small_name, big_name = f"batch {small.settings['batch_size']}", f"batch {big.settings['batch_size']}"
    faster = compare_means(small.fit_seconds, big.fit_seconds) < 0
    accuracy = compare_means(small.test_accuracy, big.test_accuracy)  # -1: the big batch is less accurate
    small_seconds, big_seconds = mean_and_std(small.fit_seconds)[0], mean_and_std(big.fit_seconds)[0]
    difference = (mean_and_std(big.test_accuracy)[0] - mean_and_std(small.test_accuracy)[0]) * 100
    spread = max(mean_and_std(small.test_accuracy)[1], mean_and_std(big.test_accuracy)[1]) * 100
    little_cost = accuracy >= 0 or -difference <= LITTLE_COST_POINTS
    if faster:
        speed_text = f"{big_name} trained {small_seconds / big_seconds:.1f}x as fast as {small_name}"
    else:
        speed_text = (f"{big_name} was not faster than {small_name} beyond the seed spread "
                      f"({big_seconds:.1f} s against {small_seconds:.1f} s of fit)")
    accuracy_text = {-1: "ended less accurate", 0: "ended as accurate, within the seed spread",
                     1: "ended more accurate"}[accuracy]
    accuracy_text += (f" ({difference:+.2f} points of test accuracy; seed spread up to {spread:.2f}; "
                      f"{'a little' if little_cost else 'more than a little'} cost, the line being "
                      f"{LITTLE_COST_POINTS} points)")
    per_size = ", ".join(f"{group.settings['batch_size']}: {mean_and_std(group.test_accuracy)[0]:.2%} in "
                         f"{mean_and_std(group.fit_seconds)[0]:.1f} s" for group in measured)
    text = f"{speed_text}, and {accuracy_text}. Test accuracy and fit time per batch size: {per_size}."
    return Verdict(BATCH_CLAIM, _ANSWERS[faster + little_cost], text[0].upper() + text[1:])


def tutorial_claims_verdicts(groups: Sequence[GroupSummary]) -> list[Verdict]:
    """The depth verdict from the "depth" grid, the batch-size verdict from the "batch size" grid."""
    return [depth_verdict([group for group in groups if group.grid == "depth"]),
            batch_size_verdict([group for group in groups if group.grid == "batch size"])]


def _layers(group: GroupSummary) -> str:
    units = group.settings["hidden_units"]
    return f"{len(units)} layer{'s' * (len(units) != 1)} of {'/'.join(map(str, sorted(set(units))))}"
