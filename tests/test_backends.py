"""Train, save, load and evaluate on whichever Keras backend this process runs.

`scripts/test` runs this file again in environments of their own with KERAS_BACKEND=tensorflow
and KERAS_BACKEND=torch, so that each backend gets this round trip in CI.
"""

import json
import os

import pytest

from digitlab import runs
from digitlab.analysis.evaluate import evaluate_run
from digitlab.backend import BACKENDS, select_backend
from digitlab.config import TrainingConfig
from digitlab.training.train import train

pytestmark = pytest.mark.backend


def test_train_save_load_evaluate_round_trip(tiny_mnist, tmp_path):
    expected_backend = os.environ.get("KERAS_BACKEND", "jax")
    result = train(TrainingConfig(epochs=2, batch_size=32, hidden_units=(32,)), run_dir=tmp_path / "run", verbose=0)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["backend"] == result.metrics.backend == expected_backend
    assert result.metrics.test_accuracy > 0.9
    # The fast loop is JAX-only; the other backends fall back to model.fit and say why.
    assert result.metrics.fit_loop == ("fast" if expected_backend == "jax" else "keras")
    if expected_backend != "jax":
        assert "JAX backend" in result.metrics.fit_loop_fallback

    model = runs.load_model(tmp_path / "run")
    assert model.input_shape == (None, 784) and model.output_shape == (None, 10)
    evaluation = evaluate_run(tmp_path / "run")
    assert evaluation["backend"] == expected_backend
    assert evaluation["accuracy"] == pytest.approx(result.metrics.test_accuracy, abs=1e-6)


def test_asking_for_another_backend_once_keras_runs_is_a_clear_error():
    import keras  # noqa: F401  (Keras is now running on this process's backend)

    from digitlab.errors import BackendError

    active = select_backend()
    other = next(name for name in BACKENDS if name != active)
    with pytest.raises(BackendError, match=f"already running on {active}"):
        select_backend(other)
