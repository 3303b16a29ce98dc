"""Figures: each plot writes a real PNG, also for the edge cases a run can produce (no validation, no mistakes)."""

import numpy as np

from digitlab.analysis import plots
from digitlab.record import RunMetrics

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path):
    assert path.read_bytes().startswith(PNG_SIGNATURE), f"{path.name} is not a PNG"


def test_run_plots_without_validation_test_figures_or_images_still_render(tmp_path):
    metrics = RunMetrics(status="finished", test_accuracy=0.88, test_loss=0.4)
    drawn = [plots.plot_learning_curves({"loss": [0.3], "accuracy": [0.9]}, metrics, tmp_path / "curves.png"),
             plots.plot_learning_curves({"loss": [0.3, 0.2]}, None, tmp_path / "unfinished.png"),
             plots.plot_image_grid(np.zeros((0, 28, 28), np.uint8), [], tmp_path / "none.png", title="no mistakes"),
             plots.plot_confusion_matrix(np.eye(10, dtype=int) * 5, [f"class {i}" for i in range(10)],
                                         tmp_path / "cm.png")]
    assert drawn == [tmp_path / name for name in ("curves.png", "unfinished.png", "none.png", "cm.png")]
    for path in drawn:
        assert_png(path)


def test_sweep_plots_render_one_point_per_seed_and_a_panel_per_factor(tmp_path):
    groups = [{"label": "batch size 64", "fit_seconds": [10.0, 11.0], "test_accuracy": [0.978, 0.981]},
              {"label": "batch size 1024", "fit_seconds": [2.0], "test_accuracy": [0.975]}]
    panels = [{"factor": "batch size", "levels": ["64", "1024"], "test_accuracy": [[0.978, 0.981], [0.975]],
               "fit_seconds": [[10.0, 11.0], [2.0]]}]
    assert_png(plots.plot_sweep_accuracy_vs_time(groups, tmp_path / "time.png"))
    assert_png(plots.plot_sweep_factors(panels, tmp_path / "factors.png"))
