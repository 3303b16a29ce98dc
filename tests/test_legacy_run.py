"""A run folder written by digitlab 0.1.0 (commit c7b49af) still works with today's commands.

`fixtures/run-0.1.0/` holds that release's exact config.json, metrics.json and history.csv (a
2-epoch run of a 16-unit MLP on 600 MNIST images, validation split 0.1). Model files are never
committed, so the test saves a model of the same architecture beside them.
"""

import json
import shutil
from pathlib import Path

import pytest

from digitlab import runs
from digitlab.config import TrainingConfig
from digitlab.data.synthetic import digit_picture

FIXTURE = Path(__file__).parent / "fixtures" / "run-0.1.0"


@pytest.fixture
def legacy_run(tmp_path, tiny_mnist) -> Path:
    from digitlab.training.models import build_model

    folder = tmp_path / "20261129-173310-mnist-16-e2-b64-s0"
    shutil.copytree(FIXTURE, folder)
    training = json.loads((folder / "config.json").read_text())["training"]
    build_model(TrainingConfig.from_dict(training)).save(folder / "model.keras")
    return folder


def test_the_fixture_is_the_old_format_without_a_version():
    for name in ("config.json", "metrics.json"):
        assert "format_version" not in json.loads((FIXTURE / name).read_text())


def test_it_reads_as_a_typed_record_of_format_1():
    run = runs.read_run(FIXTURE)
    assert run.config.format_version == 1 and run.metrics.format_version == 1
    assert run.config.training.hidden_units == (16,) and run.config.input_shape == (784,)
    assert run.config.class_names == tuple("0123456789") and run.config.created_at == "2026-11-29T17:33:10+00:00"
    assert run.metrics.status == "finished" and run.metrics.test_accuracy == pytest.approx(0.3727, abs=1e-4)
    assert run.metrics.val_accuracy == pytest.approx(0.38333, abs=1e-5) and run.metrics.epoch_seconds == (0.5762, 0.0032)
    assert run.metrics.warnings == () and run.metrics.diverged_at_epoch is None


def test_a_rewrite_keeps_every_old_field_in_its_place(tmp_path):
    """What 0.1.0 wrote comes back unchanged, in the same order, with only new fields added."""
    run = runs.read_run(FIXTURE)
    for name, record in (("config.json", run.config), ("metrics.json", run.metrics)):
        assert_kept(json.loads((FIXTURE / name).read_text()), record.to_dict())


def assert_kept(old: dict, new: dict) -> None:
    """Every key of `old` is in `new` with the same value and in the same order, at every level."""
    assert [key for key in new if key in old] == list(old)
    for key, value in old.items():
        if isinstance(value, dict):
            assert_kept(value, new[key])
        else:
            assert new[key] == value, key


def test_evaluate_report_compare_and_predict_work_on_it(run_cli, legacy_run, tiny_run, tmp_path):
    code, out, err = run_cli("evaluate", str(legacy_run), "--json")
    assert code == 0, err
    assert json.loads(out)["count"] == 128  # the tiny test set the `tiny_mnist` fixture caches

    code, out, err = run_cli("report", str(legacy_run))
    assert code == 0, err
    page = (legacy_run / "report.html").read_text()
    assert "37.27%" in page  # the test accuracy recorded in its metrics.json

    code, out, err = run_cli("compare", str(legacy_run), str(tiny_run), "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["test_accuracy"][0] == pytest.approx(0.3727, abs=1e-4)

    digit_picture(4).save(tmp_path / "four.png")
    # The old run is a weak model (37%): name its best digit whatever its probability.
    code, out, err = run_cli("predict", str(tmp_path / "four.png"), "--model", str(legacy_run), "--json",
                             "--min-confidence", "0")
    assert code == 0, err
    assert json.loads(out.splitlines()[0])["digit"] in range(10)
