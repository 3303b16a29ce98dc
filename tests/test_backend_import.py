"""How digitlab imports Keras (backend.py): in the background, and without matplotlib until it is used.

Each test runs a fresh interpreter, since this one has imported Keras already.
"""

import subprocess
import sys
import textwrap


def run_python(code: str, *arguments: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *arguments], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_keras_is_imported_without_matplotlib_and_its_plot_helper_still_works(tmp_path):
    picture = tmp_path / "gallery.png"
    output = run_python("""
        import sys
        from digitlab.backend import import_keras

        keras = import_keras()
        print("matplotlib loaded with keras:", "matplotlib" in sys.modules)
        import numpy as np

        keras.visualization.plot_image_gallery(np.zeros((4, 8, 8, 3)), rows=2, cols=2, path=sys.argv[1])
        print("matplotlib loaded at first use:", "matplotlib.pyplot" in sys.modules)
        import matplotlib.pyplot
        print("the real pyplot:", hasattr(matplotlib.pyplot, "subplots"))
    """, str(picture))
    assert "matplotlib loaded with keras: False" in output
    assert "matplotlib loaded at first use: True" in output and "the real pyplot: True" in output
    assert picture.read_bytes().startswith(b"\x89PNG")


def test_other_threads_may_import_matplotlib_while_keras_is_imported():
    output = run_python("""
        import threading
        from digitlab.backend import import_keras_in_background, import_keras

        thread = import_keras_in_background()
        import matplotlib.pyplot  # the main thread, while Keras loads in the other
        thread.join()
        keras = import_keras()
        print("pyplot works:", hasattr(matplotlib.pyplot, "subplots"), keras.backend.backend())
    """)
    assert "pyplot works: True" in output


def test_a_background_import_is_shared_and_the_backend_is_known_while_it_runs():
    output = run_python("""
        from digitlab.backend import import_keras_in_background, import_keras, select_backend

        first = import_keras_in_background("jax")
        second = import_keras_in_background("jax")
        print("shared:", first is second)
        print("while importing:", select_backend())  # Keras may be half imported here
        first.join()
        print("after:", import_keras().backend.backend())
    """)
    assert "shared: True" in output and "while importing: jax" in output and "after: jax" in output
