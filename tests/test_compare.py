"""Comparing runs: which settings differ, the metrics side by side, as a table, Markdown and JSON."""

import json
from pathlib import Path

from digitlab import runs
from digitlab.analysis import compare
from digitlab.config import TrainingConfig


def write_run(folder, metrics=None, **settings):
    """A run folder as `train` leaves it (config.json, metrics.json), without training."""
    folder.mkdir(parents=True)
    training = {**TrainingConfig().to_dict(), **settings}
    runs.write_json(folder / "config.json", {"training": training, "backend": "jax", "input_shape": [784],
                                            "class_names": [str(label) for label in range(10)]})
    if metrics is not None:
        runs.write_json(folder / "metrics.json", metrics)
    return folder


def metrics(test_accuracy, fit_seconds=6.0, **extra):
    return {"status": "finished", "epochs_completed": 5, "test_loss": 0.07, "test_accuracy": test_accuracy,
            "train_loss": 0.03, "train_accuracy": 0.9908, "fit_seconds": fit_seconds, **extra}


def test_differing_settings_and_metrics_line_up_per_run(tmp_path):
    first = write_run(tmp_path / "a", metrics(0.9788))
    second = write_run(tmp_path / "b", metrics(0.9812, fit_seconds=9.5), hidden_units=[512, 512], seed=1)
    comparison = compare.compare_runs([first, second])

    assert comparison.names == ["a", "b"]
    assert comparison.differing == ["hidden_units", "seed"]
    assert comparison.settings["hidden_units"] == [[512], [512, 512]]
    assert comparison.metrics["test_accuracy"] == [0.9788, 0.9812]
    assert comparison.metrics["fit_seconds"] == [6.0, 9.5]
    assert "val_accuracy" not in comparison.metrics  # no run has it


def test_markdown_shows_differences_metrics_and_what_is_shared(tmp_path):
    first = write_run(tmp_path / "tutorial", metrics(0.9788))
    second = write_run(tmp_path / "wide-batch", metrics(0.9745, val_accuracy=0.97), batch_size=1024)
    text = compare.to_markdown(compare.compare_runs([first, second]))
    lines = text.splitlines()

    assert lines[0] == "| | tutorial | wide-batch |"
    assert "| **batch_size** | 64 | 1024 |" in lines
    assert "| test accuracy | 97.88% | 97.45% |" in lines
    assert "| validation accuracy (last epoch) | - | 97.00% |" in lines
    assert not any(line.startswith("| **epochs**") for line in lines)  # equal in both: not a row
    assert lines[-1].startswith("Same in all runs: ") and "dataset=mnist, " in lines[-1] and "epochs=5, " in lines[-1]
    assert "hidden_units=512, " in lines[-1] and "batch_size" not in lines[-1]


def test_new_settings_unknown_to_this_code_compare_too(tmp_path):
    """Settings are compared as saved: a field added later (a recipe, say) needs no change here."""
    first = write_run(tmp_path / "a", metrics(0.98), recipe="tutorial")
    second = write_run(tmp_path / "b", metrics(0.99), recipe="cnn")
    comparison = compare.compare_runs([first, second])
    assert comparison.differing == ["recipe"] and comparison.settings["recipe"] == ["tutorial", "cnn"]


def test_an_unfinished_run_is_shown_as_such(tmp_path):
    finished = write_run(tmp_path / "a", metrics(0.98))
    unfinished = write_run(tmp_path / "b")
    comparison = compare.compare_runs([finished, unfinished])
    assert comparison.metrics["status"] == ["finished", "unfinished"]
    assert comparison.metrics["test_accuracy"] == [0.98, None]


def test_the_cli_prints_a_table_markdown_or_json(run_cli, tmp_path):
    first = write_run(tmp_path / "a", metrics(0.9788))
    second = write_run(tmp_path / "b", metrics(0.9812), dropout=0.2)

    code, out, _ = run_cli("compare", str(first), str(second))
    assert code == 0 and "dropout" in out and "97.88%" in out and "98.12%" in out and "same in all runs" in out

    code, out, _ = run_cli("compare", str(first), str(second), "--markdown")
    assert code == 0 and "| **dropout** | 0.0 | 0.2 |" in out

    code, out, _ = run_cli("compare", str(first), str(second), "--json")
    result = json.loads(out)
    assert code == 0 and result["differing"] == ["dropout"] and result["metrics"]["test_accuracy"] == [0.9788, 0.9812]

    code, _, err = run_cli("compare", str(first), str(tmp_path / "missing"))
    assert code == 2 and err.startswith("error:") and "does not exist" in err


def test_a_run_written_by_digitlab_0_1_0_compares_with_a_new_one(tmp_path):
    """The old record (no format_version) reads through the run record like a new one."""
    old = Path(__file__).parent / "fixtures" / "run-0.1.0"
    new = write_run(tmp_path / "new", metrics(0.9788), validation_split=0.1, epochs=2, hidden_units=[16],
                    max_train_images=600)
    comparison = compare.compare_runs([old, new])
    assert comparison.names == ["run-0.1.0", "new"] and comparison.differing == []
    assert comparison.metrics["test_accuracy"] == [0.3727000057697296, 0.9788]
    assert comparison.metrics["val_accuracy"] == [0.38333333333333336, None]


def test_folders_with_the_same_name_are_told_apart_by_path(tmp_path):
    first = write_run(tmp_path / "x" / "run", metrics(0.98))
    second = write_run(tmp_path / "y" / "run", metrics(0.97))
    assert compare.compare_runs([first, second]).names == [str(first), str(second)]
