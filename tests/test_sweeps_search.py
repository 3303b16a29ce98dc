"""Searches (`digitlab sweep --search`): ranges, the objective's guard, Optuna's study in the sweep folder,
resuming after Ctrl-C, and pruning where the trial trains. Real training on the tiny fake MNIST."""

import csv
import json
import sys

import pytest

from digitlab.errors import ConfigError
from digitlab.sweeps import ranges, search, summary
from digitlab.sweeps.ranges import Range
from digitlab.sweeps.search import SearchPlan

optuna = pytest.importorskip("optuna")

TINY = {"epochs": 1, "batch_size": 32, "hidden_units": (16,), "validation_split": 0.25}


def tiny_plan(**changes) -> SearchPlan:
    settings = {"space": {"learning_rate": Range(1e-4, 1e-1, log=True), "hidden_units": [(8,), (16,)]},
                "fixed": {key: value for key, value in TINY.items() if key != "hidden_units"}, "trials": 3}
    return SearchPlan(**{**settings, **changes})


# --- ranges and plans ----------------------------------------------------------------------------


def test_ranges_are_parsed_with_the_settings_type_and_scale():
    assert ranges.parse_range("learning_rate", "1e-4..1e-2:log") == Range(1e-4, 1e-2, log=True)
    assert ranges.parse_range("dropout", "0..0.5") == Range(0.0, 0.5)
    assert ranges.parse_range("batch_size", "32..256:log") == Range(32, 256, log=True, integer=True)
    assert ranges.is_range("1e-4..1e-2:log") and not ranges.is_range("0.001,0.01")


@pytest.mark.parametrize("name, text, message", [
    ("learning_rate", "1e-2..1e-4", "low bound must be below"),
    ("dropout", "0..0.5:log", "log scale needs bounds above 0"),
    ("dropout", "0..0.5:cubic", "is not a range"),
    ("batch_size", "32..64.5", "must be int numbers"),
    ("optimizer", "a..b", "only number settings take a range"),
    ("depth", "1..3", "unknown training setting 'depth'"),
])
def test_bad_ranges_are_refused_with_what_to_write(name, text, message):
    with pytest.raises(ConfigError, match=message):
        ranges.parse_range(name, text)


def test_the_test_set_objective_and_a_missing_validation_split_are_refused():
    with pytest.raises(ConfigError, match="--allow-test-objective"):
        tiny_plan(objective="test_accuracy")
    assert tiny_plan(objective="test_accuracy", allow_test_objective=True).objective == "test_accuracy"
    with pytest.raises(ConfigError, match="needs images held out for validation: add --validation-split"):
        tiny_plan(fixed={"epochs": 1})
    with pytest.raises(ConfigError, match="needs something to search"):
        tiny_plan(space={})
    with pytest.raises(ConfigError, match="seed is not a setting"):
        tiny_plan(fixed={**TINY, "seed": 3})


def test_the_default_folder_is_the_same_for_more_trials_and_another_for_another_space():
    assert tiny_plan().default_dir() == tiny_plan(trials=10).default_dir()
    assert tiny_plan().default_dir() != tiny_plan(sampler="random").default_dir()
    assert tiny_plan().default_dir() != tiny_plan(space={"dropout": Range(0, 0.5)}).default_dir()


# --- running -------------------------------------------------------------------------------------


def study_trials(sweep_dir):
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(sweep_dir / "study.journal")))
    return optuna.load_study(study_name="digitlab", storage=storage).get_trials()


def test_a_search_trains_real_trials_keeps_its_study_and_goes_on_to_more_trials(tiny_mnist, tmp_path):
    sweep_dir = tmp_path / "search"
    result = search.run_search(tiny_plan(), sweep_dir, isolate=False)
    assert (result.trained, result.skipped, result.interrupted) == (3, 0, False)
    trials = study_trials(sweep_dir)
    assert [trial.state.name for trial in trials] == ["COMPLETE"] * 3
    with open(sweep_dir / "sweep.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == 3 and {row["status"] for row in rows} == {"finished"}
    for trial, row in zip(trials, rows, strict=True):  # the objective is the trial's own last validation accuracy
        metrics = json.loads((sweep_dir / "trials" / row["trial"] / "metrics.json").read_text())
        assert trial.value == metrics["val_accuracy"] == pytest.approx(float(row["objective"]))
        assert float(row["learning_rate"]) == pytest.approx(trial.params["learning_rate"])
        assert row["node"]
    assert result.best.objective == max(trial.value for trial in trials)
    assert "| trial | learning_rate | hidden_units | state | val accuracy |" in (sweep_dir / "sweep.md").read_text()

    before = {path.name: (path / "metrics.json").stat().st_mtime_ns for path in (sweep_dir / "trials").iterdir()}
    again = search.run_search(tiny_plan(), sweep_dir, isolate=False)
    assert (again.trained, again.skipped) == (0, 0) and len(study_trials(sweep_dir)) == 3

    more = search.run_search(tiny_plan(trials=5), sweep_dir, isolate=False)
    assert more.trained + more.skipped == 2 and len(study_trials(sweep_dir)) == 5
    for name, stamp in before.items():  # the earlier trials were not trained again
        assert (sweep_dir / "trials" / name / "metrics.json").stat().st_mtime_ns == stamp


def test_ctrl_c_keeps_finished_trials_and_the_stopped_one_is_trained_again_with_its_settings(tiny_mnist, tmp_path):
    sweep_dir = tmp_path / "search"
    calls = []

    def interrupted_on_the_second(config, run_dir, backend, data_root, pruning=None):
        calls.append(config["learning_rate"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return search.train_pruned_trial(config, run_dir, backend, data_root, pruning)

    result = search.run_search(tiny_plan(), sweep_dir, isolate=False, trainer=interrupted_on_the_second)
    assert result.interrupted and result.trained == 1
    stopped_rate = calls[1]

    calls.clear()

    def counting(config, run_dir, backend, data_root, pruning=None):
        calls.append(config["learning_rate"])
        return search.train_pruned_trial(config, run_dir, backend, data_root, pruning)

    result = search.run_search(tiny_plan(), sweep_dir, isolate=False, trainer=counting)
    assert (result.trained, result.interrupted) == (2, False)
    states = [(trial.state.name, trial.user_attrs.get("status")) for trial in study_trials(sweep_dir)]
    assert states.count(("COMPLETE", "finished")) == 3 and states.count(("FAIL", None)) == 1
    rates = [trial.params["learning_rate"] for trial in study_trials(sweep_dir) if trial.state.name == "COMPLETE"]
    assert calls[0] == stopped_rate and stopped_rate in rates  # the stopped trial ran again, first, as it was


def test_a_trial_clearly_behind_the_finished_ones_is_pruned_where_it_trains(tiny_mnist, tmp_path):
    distributions = {"learning_rate": optuna.distributions.FloatDistribution(1e-6, 1.0, log=True)}
    finished = tuple(optuna.trial.create_trial(
        params={"learning_rate": 1e-3}, distributions=distributions, value=0.99,
        intermediate_values={epoch: 0.95 + epoch / 100 for epoch in range(1, 5)}) for _ in range(4))
    pruning = search.Pruning(optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=2), "val_accuracy",
                             finished)
    config = search.SearchPlan(space={"learning_rate": Range(1e-6, 1.0, log=True)}, fixed={**TINY, "epochs": 4})

    behind = config.config({"learning_rate": 1e-6})  # barely learns: far below 95% after epoch 2
    search.train_pruned_trial(behind.to_dict(), str(tmp_path / "behind"), None, None, pruning)
    assert summary.trial_status(tmp_path / "behind", behind) == "pruned"
    assert json.loads((tmp_path / "behind" / "metrics.json").read_text())["epochs_completed"] == 2

    without = search.Pruning(pruning.pruner, "val_accuracy", ())  # no finished trials: nothing to be behind
    search.train_pruned_trial(behind.to_dict(), str(tmp_path / "alone"), None, None, without)
    assert summary.trial_status(tmp_path / "alone", behind) == "finished"


# --- the command line ----------------------------------------------------------------------------


@pytest.mark.parametrize("arguments, message", [
    (["--set", "learning_rate=1e-4..1e-2:log"], "ranges need --search tpe or --search random"),
    (["--search", "tpe", "--set", "learning_rate=1e-4..1e-2:log"], "add --validation-split"),
    (["--search", "tpe", "--set", "learning_rate=1e-4..1e-2:log", "--objective", "test_accuracy"],
     "--allow-test-objective"),
    (["--search", "grid", "--set", "learning_rate=1e-4..1e-2:log", "--validation-split", "0.1"], "unknown search"),
    (["--search", "tpe", "--set", "learning_rate=1e-2..1e-4", "--validation-split", "0.1"], "low bound must be below"),
    (["--search", "tpe", "--seeds", "3", "--set", "learning_rate=1e-4..1e-2"], "leave out --study and --seeds"),
    (["--executor", "slurm"], "unknown executor 'slurm'"),
    (["--address", "127.0.0.1:6379"], "are for --executor ray"),
    (["--executor", "ray", "--jobs", "2"], "--jobs is for the local executor"),
])
def test_bad_search_and_executor_flags_exit_2_before_any_training(run_cli, tmp_path, arguments, message):
    code, _, err = run_cli("sweep", *arguments, "--sweep-dir", str(tmp_path / "sweep"))
    assert code == 2 and err.startswith("error:") and message in err
    assert not (tmp_path / "sweep" / "trials").exists()


@pytest.mark.parametrize("module, arguments, extra", [
    ("optuna", ["--search", "tpe", "--set", "learning_rate=1e-4..1e-2:log", "--validation-split", "0.1"], "search"),
    ("ray", ["--executor", "ray"], "ray"),
])
def test_without_the_extra_the_flag_says_what_to_install(run_cli, tmp_path, monkeypatch, module, arguments, extra):
    monkeypatch.setitem(sys.modules, module, None)  # `import optuna` / `import ray` now fail as if not installed
    code, _, err = run_cli("sweep", *arguments, "--sweep-dir", str(tmp_path / "sweep"))
    assert code == 2 and f"pip install 'digitlab[{extra}]'" in err


def test_a_search_and_a_grid_never_share_a_folder(tmp_path):
    from digitlab.sweeps import plan as plans
    from digitlab.sweeps import runner

    (tmp_path / "grid").mkdir()
    (tmp_path / "grid" / "sweep.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds a grid sweep"):
        search.run_search(tiny_plan(), tmp_path / "grid", isolate=False)
    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "search.json").write_text(json.dumps(tiny_plan().to_dict()))
    with pytest.raises(ConfigError, match="holds a search"):
        runner.run_sweep(plans.grid_plan({"epochs": [1]}), tmp_path / "search", isolate=False)
    with pytest.raises(ConfigError, match="holds another search"):
        search.run_search(tiny_plan(sampler="random"), tmp_path / "search", isolate=False)
    assert not (tmp_path / "search" / "trials").exists() and not (tmp_path / "grid" / "trials").exists()


def test_a_ctrl_c_while_a_trial_is_recorded_waits_for_the_record_to_be_whole():
    import os
    import signal

    from digitlab.sweeps.executors import interrupts_deferred

    recorded = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of recording
        recorded.append("the rest of the record")
    assert recorded == ["the rest of the record"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works as before afterwards
