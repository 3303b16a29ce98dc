"""Peak memory that preparing one image takes, per pixel, by the mode Pillow decodes it to.

    python benchmarks/image_memory.py            # 3000x3000 images; --side N for another size

The figures behind `digitlab.web.classify.BYTES_PER_PIXEL`, with which the server judges an upload
from its header before decoding it (a small 16-bit PNG can take most of a gigabyte to prepare). Each
image is written to a file first; then a fresh process reads it and prepares it (`prepare_image`),
and the growth of its peak resident memory (ru_maxrss) over the pixel count is printed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

# The modes measured (files of each are made from random pixels; TIFF for those PNG cannot hold).
MODES = ("1", "L", "P", "LA", "RGB", "RGBA", "CMYK", "I;16", "I", "F")

MEASURE = """
import io, resource, sys
data = open(sys.argv[1], "rb").read()
from PIL import Image
from digitlab.inference.images import prepare_image
Image.open(io.BytesIO(data)).close()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    prepare_image(io.BytesIO(data))
except Exception:
    pass  # random pixels may have no single digit: the preparing is what is measured
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


def write_picture(mode: str, side: int, folder: Path) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    if mode == "I;16":
        picture = Image.fromarray(rng.integers(0, 65535, (side, side), dtype=np.uint16))
    elif mode == "I":
        picture = Image.fromarray(rng.integers(0, 2**20, (side, side), dtype=np.int32))
    elif mode == "F":
        picture = Image.fromarray(rng.random((side, side), dtype=np.float32))
    else:
        picture = Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).convert(mode)
    path = folder / f"{mode.replace(';', '')}.{'tif' if mode in ('CMYK', 'I', 'F') else 'png'}"
    picture.save(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=3000, help="image width and height in pixels")
    side = parser.parse_args().side
    with tempfile.TemporaryDirectory() as folder:
        print(f"{'mode':6} peak bytes per pixel ({side}x{side} images)")
        for mode in MODES:
            path = write_picture(mode, side, Path(folder))
            grown = int(subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True,
                                       check=True).stdout.split()[-1])
            print(f"{mode:6} {grown / side / side:5.1f}")


if __name__ == "__main__":
    main()
