"""What `digitlab predict` loads on its way to an answer with the bundled reader: ONNX Runtime, never
Keras, JAX, SciPy or matplotlib; and `digitlab --help` not even NumPy. Each check runs a fresh
interpreter in an empty folder (no runs/), as a user starts the command. How long it takes is measured
by benchmarks/start_up.py, not here."""

import subprocess
import sys
import textwrap

import pytest
from PIL import Image

from digitlab.data.synthetic import digit_picture
from digitlab.inference import bundled

# Imported at exit by the command run in `imported_by`, among those worth knowing about.
WATCHED = ("numpy", "PIL", "onnxruntime", "keras", "jax", "scipy", "matplotlib", "tensorflow", "torch")


def imported_by(folder, *arguments: str) -> tuple[str, set[str]]:
    """Run `digitlab ARGUMENTS` in a fresh interpreter in `folder`: its output, and the WATCHED modules it imported."""
    script = textwrap.dedent(f"""
        import atexit, sys
        atexit.register(lambda: print("imported:", *sorted(set({WATCHED!r}) & set(sys.modules))))
        from digitlab import cli
        sys.argv = ["digitlab", *sys.argv[1:]]
        cli.main()
    """)
    completed = subprocess.run([sys.executable, "-c", script, *arguments], cwd=folder, capture_output=True,
                               text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    output, _, imported = completed.stdout.rpartition("imported:")
    return output, set(imported.split())


@pytest.mark.skipif(not bundled.is_available(), reason="this installation has no bundled reader")
def test_predict_with_the_bundled_reader_imports_neither_keras_nor_jax(tmp_path):
    digit_picture(1).save(tmp_path / "digit.png")
    photo = Image.new("RGB", (3000, 2000), (225, 222, 215))  # phone-sized: decoded at 1/8 scale
    photo.paste(digit_picture(2).resize((1200, 1000)), (900, 500))
    photo.save(tmp_path / "photo.jpg", quality=90)
    output, imported = imported_by(tmp_path, "predict", str(tmp_path / "digit.png"), str(tmp_path / "photo.jpg"))
    assert output.count(": ") >= 2 and "digit.png" in output and "photo.jpg" in output
    assert {"numpy", "PIL", "onnxruntime"} <= imported
    assert not imported & {"keras", "jax", "scipy", "matplotlib", "tensorflow", "torch"}


def test_help_imports_no_numpy(tmp_path):
    output, imported = imported_by(tmp_path, "--help")
    assert "predict" in output and not imported
