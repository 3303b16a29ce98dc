"""How digitlab imports Keras (backend.py): in the background, while other start-up work goes on.

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
