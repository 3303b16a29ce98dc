"""Sweeps: grid expansion, resuming, Ctrl-C, the summaries (mean ± std over seeds) and the study's verdicts."""

import csv
import dataclasses
import json
import math

import pytest

from digitlab import runs
from digitlab.config import TrainingConfig
from digitlab.errors import ConfigError
from digitlab.sweeps import plan as plans
from digitlab.sweeps import runner, studies, summary

TINY = {"epochs": 1, "batch_size": 32, "hidden_units": (16,)}


class CountingTrainer:
    """The real trainer (train.train on the tiny data set), counting what it trains."""

    def __init__(self):
        self.trained = []

    def __call__(self, config, run_dir, backend, data_root):
        self.trained.append(run_dir)
        return runner.train_trial(config, run_dir, backend, data_root)


def fake_trainer(accuracy_of, seconds_of):
    """Writes a run folder as train does, with chosen figures, so summaries and verdicts can be checked exactly."""
    calls = []

    def trainer(config, run_dir, backend, data_root):
        folder = runs.create_run_dir(run_dir, "unused")
        settings = TrainingConfig.from_dict(config)
        runs.write_json(folder / "config.json", {"training": config, "input_shape": [784]})
        accuracy = accuracy_of(settings)
        runs.write_json(folder / "metrics.json", {
            "status": "finished", "epochs_completed": settings.epochs, "test_accuracy": accuracy,
            "test_loss": 1 - accuracy, "train_accuracy": min(1.0, accuracy + 0.01), "train_loss": 0.01,
            "fit_seconds": seconds_of(settings), "samples_per_second": 1000.0})
        calls.append(settings)
        return "finished"

    trainer.calls = calls
    return trainer


# --- plans ---------------------------------------------------------------------------------------


def test_flag_values_are_parsed_by_the_settings_type():
    assert plans.parse_values("batch_size", ["64,256", "1024"]) == [64, 256, 1024]
    assert plans.parse_values("hidden_units", ["512", "512,512"]) == [(512,), (512, 512)]
    assert plans.parse_values("learning_rate", ["0.001,0.01"]) == [0.001, 0.01]
    assert plans.parse_values("optimizer", ["adam,sgd"]) == ["adam", "sgd"]
    with pytest.raises(ConfigError, match="--batch-size got 'big'"):
        plans.parse_values("batch_size", ["64,big"])
    with pytest.raises(ConfigError, match="unknown training setting 'depth'"):
        plans.parse_values("depth", ["3"])


def test_each_settings_value_type_comes_from_the_config_annotations():
    kinds = plans.value_types()
    assert list(kinds) == [field.name for field in dataclasses.fields(TrainingConfig)]
    assert (kinds["hidden_units"], kinds["conv_filters"], kinds["epochs"], kinds["dropout"], kinds["optimizer"]) == (
        tuple, tuple, int, float, str)


def test_a_grid_is_every_combination_times_every_seed_on_top_of_the_fixed_settings():
    configs = plans.expand_grid({"epochs": 2}, {"hidden_units": [(512,), (512, 512)], "batch_size": [64, 256, 1024]},
                                seeds=[0, 1])
    assert len(configs) == 2 * 3 * 2
    assert {config.epochs for config in configs} == {2}
    assert [(config.hidden_units, config.batch_size, config.seed) for config in configs[:4]] == [
        ((512,), 64, 0), ((512,), 64, 1), ((512,), 256, 0), ((512,), 256, 1)]
    assert len(set(configs)) == len(configs)


@pytest.mark.parametrize("fixed, factors, seeds, message", [
    ({}, {"seed": [0, 1]}, [0], "--seeds"),
    ({}, {"batch_size": []}, [0], "has no values"),
    ({"depth": 3}, {}, [0], "unknown training setting"),
    ({}, {"batch_size": [64]}, [], "at least one seed"),
    ({}, {"batch_size": [64, 0]}, [0], "batch_size must be a positive"),
])
def test_bad_grids_are_refused_before_anything_runs(fixed, factors, seeds, message):
    with pytest.raises(ConfigError, match=message):
        plans.expand_grid(fixed, factors, seeds)


def test_trial_names_are_deterministic_readable_and_unique():
    config = TrainingConfig(hidden_units=(512, 512), batch_size=256, seed=2)
    name = plans.trial_name(config)
    assert name == plans.trial_name(TrainingConfig(hidden_units=(512, 512), batch_size=256, seed=2))
    assert name.startswith("mnist-512x512-e5-b256-s2-")
    # Settings missing from the readable part still give another name.
    assert plans.trial_name(TrainingConfig(learning_rate=0.01)) != plans.trial_name(TrainingConfig())


def test_flags_with_one_value_are_fixed_and_the_others_are_factors():
    plan = plans.grid_plan({"epochs": [1], "batch_size": [64, 128]}, seeds=3)
    assert plan.fixed == {"epochs": 1} and plan.grids[0].factors == {"batch_size": [64, 128]}
    assert len(plan.trials()) == 6
    assert plan.default_dir() == plans.grid_plan({"epochs": [1], "batch_size": [64, 128]}, seeds=3).default_dir()
    assert plan.default_dir() != plans.grid_plan({"epochs": [2], "batch_size": [64, 128]}, seeds=3).default_dir()


def test_the_tutorial_claims_study_shares_its_baseline_between_its_two_grids():
    plan = studies.study_plan("tutorial-claims", seeds=3, fixed={"epochs": 1})
    trials = plan.trials()
    # 3 depths + 5 batch sizes, the tutorial's (1 x 512, batch 64) counted once: 7 configurations.
    assert len(trials) == 7 * 3 and all(trial.config.epochs == 1 for trial in trials)
    assert {trial.config.hidden_units for trial in trials} == {(512,), (512, 512), (512, 512, 512)}
    assert {trial.config.batch_size for trial in trials} == {64, 128, 256, 512, 1024}
    with pytest.raises(ConfigError, match="varies batch_size itself"):
        studies.study_plan("tutorial-claims", fixed={"batch_size": 32})
    with pytest.raises(ConfigError, match="unknown study"):
        studies.study_plan("everything")


# --- running -------------------------------------------------------------------------------------


def test_a_sweep_trains_real_runs_and_a_rerun_skips_the_finished_ones(tiny_mnist, tmp_path):
    plan = plans.grid_plan({**{key: [value] for key, value in TINY.items()}, "hidden_units": [(8,), (16,)]}, seeds=2)
    trainer = CountingTrainer()
    result = runner.run_sweep(plan, tmp_path / "sweep", trainer=trainer, isolate=False)
    assert (result.trained, result.skipped, result.interrupted) == (4, 0, False) and len(trainer.trained) == 4

    trials_dir = tmp_path / "sweep" / "trials"
    names = sorted(path.name for path in trials_dir.iterdir())
    assert names == sorted(trial.name for trial in plan.trials())
    for name in names:  # each trial is an ordinary run folder
        files = {path.name for path in (trials_dir / name).iterdir()}
        assert {"config.json", "history.csv", "metrics.json", "model.keras"} <= files

    trainer = CountingTrainer()
    result = runner.run_sweep(plan, tmp_path / "sweep", trainer=trainer, isolate=False)
    assert (result.trained, result.skipped) == (0, 4) and trainer.trained == []

    # A trial that crashed (no metrics.json) or was interrupted is trained again; the others are not.
    (trials_dir / names[0] / "metrics.json").unlink()
    interrupted = json.loads((trials_dir / names[1] / "metrics.json").read_text())
    runs.write_json(trials_dir / names[1] / "metrics.json", {**interrupted, "status": "interrupted"})
    trainer = CountingTrainer()
    result = runner.run_sweep(plan, tmp_path / "sweep", trainer=trainer, isolate=False)
    assert (result.trained, result.skipped) == (2, 2)
    assert sorted(trainer.trained) == sorted(str(trials_dir / name) for name in names[:2])


def test_a_diverged_trial_is_kept_reported_and_not_trained_again(tiny_mnist, tmp_path):
    settings = {**{key: [value] for key, value in TINY.items()}, "optimizer": ["sgd"], "learning_rate": [1e30]}
    plan = plans.grid_plan(settings, seeds=1)
    trainer = CountingTrainer()
    result = runner.run_sweep(plan, tmp_path / "sweep", trainer=trainer, isolate=False)
    assert result.trained == 1 and len(trainer.trained) == 1
    with open(tmp_path / "sweep" / "sweep.csv", newline="") as stream:
        (row,) = list(csv.DictReader(stream))
    assert row["status"] == "diverged" and row["test_accuracy"] == ""

    trainer = CountingTrainer()
    result = runner.run_sweep(plan, tmp_path / "sweep", trainer=trainer, isolate=False)
    assert (result.trained, result.skipped) == (0, 1) and trainer.trained == []


def test_sweep_csv_and_md_hold_every_trial_and_the_mean_and_std_over_seeds(tiny_mnist, tmp_path):
    plan = plans.grid_plan({**{key: [value] for key, value in TINY.items()}, "batch_size": [16, 64]}, seeds=3)
    result = runner.run_sweep(plan, tmp_path / "sweep", isolate=False)
    sweep_dir = tmp_path / "sweep"

    with open(sweep_dir / "sweep.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 6 and {row["status"] for row in rows} == {"finished"}
    assert {"trial", "recipe", "batch_size", "hidden_units", "seed", "test_accuracy", "fit_seconds"} <= set(rows[0])
    for row in rows:  # the figures are the trials' own
        metrics = json.loads((sweep_dir / "trials" / row["trial"] / "metrics.json").read_text())
        assert float(row["test_accuracy"]) == pytest.approx(metrics["test_accuracy"])

    markdown = (sweep_dir / "sweep.md").read_text()
    for batch_size in (16, 64):
        accuracies = [float(row["test_accuracy"]) for row in rows if row["batch_size"] == str(batch_size)]
        mean = sum(accuracies) / 3
        std = math.sqrt(sum((value - mean) ** 2 for value in accuracies) / 2)
        assert f"| {batch_size} | 3 | {mean * 100:.2f}% ± {std * 100:.2f} |" in markdown
    assert "![Test accuracy against training time](sweep_accuracy_vs_time.png)" in markdown
    for name in ("sweep_accuracy_vs_time.png", "sweep_factors.png"):
        assert (sweep_dir / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert json.loads((sweep_dir / "sweep.json").read_text())["trials"] == [row["trial"] for row in rows]
    assert result.summary.files["markdown"] == sweep_dir / "sweep.md"


def test_ctrl_c_keeps_finished_trials_and_the_next_run_goes_on(tmp_path):
    plan = plans.grid_plan({"epochs": [1], "batch_size": [16, 32, 64]}, seeds=1)
    inner = fake_trainer(lambda config: 0.9, lambda config: 1.0)

    def interrupted_on_the_second(config, run_dir, backend, data_root):
        if len(inner.calls) == 1:
            raise KeyboardInterrupt
        return inner(config, run_dir, backend, data_root)

    result = runner.run_sweep(plan, tmp_path / "sweep", trainer=interrupted_on_the_second, isolate=False)
    assert result.interrupted and result.trained == 1
    with open(tmp_path / "sweep" / "sweep.csv", newline="") as stream:
        assert [row["status"] for row in csv.DictReader(stream)] == ["finished", "pending", "pending"]

    result = runner.run_sweep(plan, tmp_path / "sweep", trainer=inner, isolate=False)
    assert (result.trained, result.skipped, result.interrupted) == (2, 1, False)
    assert [config.batch_size for config in inner.calls] == [16, 32, 64]


def test_a_trial_folder_holding_another_config_is_not_taken_as_finished(tmp_path):
    config = TrainingConfig(epochs=1, batch_size=16)
    folder = tmp_path / plans.trial_name(config)
    trainer = fake_trainer(lambda c: 0.9, lambda c: 1.0)
    trainer(TrainingConfig(epochs=1, batch_size=32).to_dict(), str(folder), None, None)
    assert summary.trial_status(folder) == "finished"
    assert summary.trial_status(folder, config) == "incomplete"
    assert summary.trial_status(folder, TrainingConfig(epochs=1, batch_size=32)) == "finished"
    assert summary.trial_status(tmp_path / "nothing") == "pending"


# --- verdicts ------------------------------------------------------------------------------------


def group(grid, accuracies, seconds=(10.0, 10.0, 10.0), **settings):
    return summary.GroupSummary(grid=grid, configuration=json.dumps(settings, default=str), settings=settings,
                              seeds=list(range(len(accuracies))), test_accuracy=list(accuracies),
                              train_accuracy=[0.99] * len(accuracies), fit_seconds=list(seconds))


def test_a_difference_counts_only_beyond_the_seed_spread():
    # Means 0.970 and 0.972 (difference 0.002); standard deviations 0.001 and 0.003.
    assert studies.compare_means([0.969, 0.970, 0.971], [0.969, 0.972, 0.975]) == 0
    assert studies.compare_means([0.969, 0.970, 0.971], [0.974, 0.975, 0.976]) == 1
    assert studies.compare_means([0.974, 0.975, 0.976], [0.969, 0.970, 0.971]) == -1
    assert studies.compare_means([0.97], [0.9701]) == 1  # one seed: no spread measured, any difference counts


def test_the_depth_verdict_needs_no_gain_beyond_the_seed_spread_and_more_time():
    within = [group("depth", [0.978, 0.979, 0.980], hidden_units=(512,)),
              group("depth", [0.978, 0.980, 0.982], (20, 20, 20), hidden_units=(512, 512)),
              group("depth", [0.977, 0.979, 0.981], (30, 30, 30), hidden_units=(512, 512, 512))]
    verdict = studies.depth_verdict(within)
    assert verdict.answer == "Supported" and "did not help" in verdict.text and "within the seed" in verdict.text
    assert "took 3.0x the training time" in verdict.text

    better = [within[0], group("depth", [0.984, 0.985, 0.986], (20, 20, 20), hidden_units=(512, 512)),
              group("depth", [0.985, 0.986, 0.987], (30, 30, 30), hidden_units=(512, 512, 512))]
    verdict = studies.depth_verdict(better)
    assert verdict.answer == "Partly supported" and "helped" in verdict.text and "+0.60 points" in verdict.text

    better_and_as_fast = [within[0], group("depth", [0.984, 0.985, 0.986], hidden_units=(512, 512))]
    verdict = studies.depth_verdict(better_and_as_fast)
    assert verdict.answer == "Not supported" and "not longer beyond the seed spread" in verdict.text

    worse = [within[0], group("depth", [0.970, 0.971, 0.972], (20, 20, 20), hidden_units=(512, 512))]
    assert studies.depth_verdict(worse).answer == "Supported"
    assert "less accurate" in studies.depth_verdict(worse).text
    assert studies.depth_verdict(within[:1]).answer == "Not measured"


def test_the_batch_size_verdict_needs_more_speed_and_little_accuracy_cost():
    small = group("batch size", [0.980, 0.981, 0.982], (10.0, 10.5, 11.0), batch_size=64)
    big_and_a_bit_worse = group("batch size", [0.977, 0.978, 0.979], (2.0, 2.1, 2.2), batch_size=1024)
    verdict = studies.batch_size_verdict([big_and_a_bit_worse, small])
    assert verdict.answer == "Supported" and "5.0x as fast" in verdict.text and "-0.30 points" in verdict.text

    big_and_much_worse = group("batch size", [0.970, 0.971, 0.972], (2.0, 2.1, 2.2), batch_size=1024)
    verdict = studies.batch_size_verdict([small, big_and_much_worse])
    assert verdict.answer == "Partly supported" and "more than a little cost" in verdict.text

    # Times within the seed spread of each other: not faster, whatever the means say.
    slow_and_as_good = group("batch size", [0.979, 0.981, 0.983], (9.5, 10.0, 10.5), batch_size=1024)
    verdict = studies.batch_size_verdict([small, slow_and_as_good])
    assert verdict.answer == "Partly supported" and "was not faster" in verdict.text
    assert "ended as accurate, within the seed spread" in verdict.text

    slow_and_worse = group("batch size", [0.970, 0.971, 0.972], (9.5, 10.0, 10.5), batch_size=1024)
    assert studies.batch_size_verdict([small, slow_and_worse]).answer == "Not supported"


def test_only_a_study_has_verdicts():
    assert studies.judge("tutorial-claims") is studies.tutorial_claims_verdicts
    assert studies.judge(None) is None and plans.grid_plan({"epochs": [1]}).study is None


def test_the_study_md_ends_with_verdicts_computed_from_the_trials(tmp_path):
    # Synthetic figures: depth costs time and gains nothing; bigger batches are faster, 0.4 points worse.
    def accuracy(config):
        return 0.98 - 0.001 * math.log2(config.batch_size / 64) + 0.0005 * config.seed

    trainer = fake_trainer(accuracy, lambda config: 640.0 / config.batch_size + len(config.hidden_units))
    plan = studies.study_plan("tutorial-claims", seeds=3, fixed={"epochs": 1})
    result = runner.run_sweep(plan, tmp_path / "study", trainer=trainer, isolate=False)
    assert result.trained == 21 and len(trainer.calls) == 21

    markdown = (tmp_path / "study" / "sweep.md").read_text()
    assert "## Depth" in markdown and "## Batch size" in markdown
    verdicts = markdown[markdown.index("## Verdicts"):]
    assert "**Claim 1: more hidden layers did not help, and slowed learning.** Supported." in verdicts
    assert "**Claim 2: bigger batches train faster, at little cost in accuracy.** Supported." in verdicts
    assert markdown.rstrip().endswith(verdicts.rstrip())  # the verdicts close the file
    assert [verdict.answer for verdict in result.summary.verdicts] == ["Supported", "Supported"]


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("arguments, message", [
    (["sweep", "--batch-size", "64,0"], "batch_size must be a positive"),
    (["sweep", "--hidden-units", "512,x"], "--hidden-units got '512,x'"),
    (["sweep", "--study", "everything"], "unknown study"),
    (["sweep", "--study", "tutorial-claims", "--epochs", "1,2"], "one value per setting"),
    (["sweep", "--set", "depth=3"], "unknown training setting 'depth'"),
    (["sweep", "--jobs", "0"], "--jobs must be 1 or more"),
])
def test_bad_sweep_flags_exit_2_before_any_training(run_cli, tmp_path, arguments, message):
    code, _, err = run_cli(*arguments, "--sweep-dir", str(tmp_path / "sweep"))
    assert code == 2 and err.startswith("error:") and message in err
    assert not (tmp_path / "sweep" / "trials").exists() or not any((tmp_path / "sweep" / "trials").iterdir())


@pytest.mark.slow
@pytest.mark.network
def test_the_cli_runs_trials_in_parallel_processes_and_resumes(run_cli, tmp_path):
    """Real MNIST (each trial is a process of its own, which the tiny test data set cannot reach)."""
    arguments = ["sweep", "--hidden-units", "16", "--batch-size", "1024,2048", "--epochs", "1", "--jobs", "2",
                 "--sweep-dir", str(tmp_path / "sweep")]
    code, out, _ = run_cli(*arguments)
    assert code == 0 and "trained 2, skipped 0" in out
    assert out.count(": test accuracy ") == 2 and "[2/2] finished mnist-16-e1-b" in out  # one line per trial
    with open(tmp_path / "sweep" / "sweep.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert [row["status"] for row in rows] == ["finished", "finished"]
    assert all(float(row["test_accuracy"]) > 0.5 for row in rows)

    code, out, _ = run_cli(*arguments)
    assert code == 0 and "trained 0, skipped 2" in out and "[2/2] skipped " in out
