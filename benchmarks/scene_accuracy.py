"""How well digits and numbers are read from phone photos of a sheet of paper lying on a table.

    .venv/bin/python benchmarks/scene_accuracy.py [--model RUN_DIR] [--singles 300] [--numbers 300]
        [--seed 3000017] [--keep DIR | --scenes DIR] [--without-finding]

Two sets of scenes made by `data/scenes.py` from MNIST's *test* digits (never its training digits):
plain, ruled and squared sheets on wooden and textured tables, turned by up to 15 degrees, in slight
perspective, under shadows, as 3000x2000, 4032x3024, 1600x1200 and 1280x960 JPEG photos (landscape
and portrait), written to a temporary folder (or --keep DIR):

- single digits: the share `classify_files` (what `digitlab predict` runs) names right, refuses, and
  names wrong;
- numbers of 2-6 digits: the share `read_files` (what `digitlab read` runs) reads exactly (the text,
  nothing more), and how well the boxes of numbers read exactly fit the truth (intersection over union
  in the photo's own pixels);
- for both: the share of photos whose writing `find_writing` finds (its crop holds every digit's box)
  and the milliseconds it takes per photo, and the figures per paper and per table.

Without --model, the bundled reader (src/digitlab/bundled) reads.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

# Far from the seeds training draws with (0, 1, 2, ...), and from read_accuracy's and scoring's.
DEFAULT_SEED = 3_000_017


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="run folder, model file or bundled folder (default: the bundled reader)")
    parser.add_argument("--singles", type=int, default=300, help="photos of single digits")
    parser.add_argument("--numbers", type=int, default=300, help="photos of numbers")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="seed of the scenes (keep it off training's)")
    parser.add_argument("--keep", type=Path, help="write the photos into this new or empty folder and keep them")
    parser.add_argument("--scenes", type=Path, help="read the photos kept in this folder by --keep (same counts and "
                                                    "seed) instead of making them again")
    parser.add_argument("--without-finding", action="store_true",
                        help="for comparison: read the photos whole, as before the writing was looked for")
    arguments = parser.parse_args()
    if arguments.without_finding:
        from digitlab.inference import writing

        writing._found = lambda *_: None  # noqa: SLF001  (every picture handed on as it is)

    from digitlab.data import datasets
    from digitlab.data.labelled_sets import LABELS_FILE
    from digitlab.data.scenes import NUMBERS, SINGLES, build_scene_set, write_scene_set
    from digitlab.inference.loading import load_bundled_reader, load_classifier

    print(f"machine: {platform.processor() or platform.machine()}, {_cpu_name()}, "
          f"{len(__import__('os').sched_getaffinity(0))} cores")
    _, (test_images, test_labels) = datasets.load("mnist")
    started = time.perf_counter()
    if arguments.scenes:
        folder = arguments.scenes
        written = {name: folder / name / LABELS_FILE for name in ("singles", "numbers")}
        missing = [str(path) for path in written.values() if not path.is_file()]
        if missing:
            sys.exit(f"no kept scenes: {', '.join(missing)} missing; make them with --keep DIR first")
        singles, numbers = (_kept(written[name]) for name in ("singles", "numbers"))
    else:
        singles = build_scene_set(test_images, test_labels, arguments.singles, arguments.seed, kind=SINGLES)
        numbers = build_scene_set(test_images, test_labels, arguments.numbers, arguments.seed + 1, kind=NUMBERS)
        folder = arguments.keep or Path(tempfile.mkdtemp(prefix="digitlab-scenes-"))
        written = {name: write_scene_set(folder / name, scenes) for name, scenes in (("singles", singles),
                                                                                      ("numbers", numbers))}
    print(f"{len(singles)} single-digit and {len(numbers)} number photos made or read in "
          f"{time.perf_counter() - started:.0f} s, in {folder}")
    classifier = load_classifier(arguments.model) if arguments.model else load_bundled_reader()
    print(f"model: {classifier.source}")
    rows: list[tuple[str, str]] = []
    if singles:
        rows += _singles(classifier, singles, _paths(written["singles"]))
    if numbers:
        rows += _numbers(classifier, numbers, _paths(written["numbers"]))
    rows += _finding(singles + numbers, _paths(written["singles"]) + _paths(written["numbers"]))
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    if arguments.keep is None and arguments.scenes is None:
        shutil.rmtree(folder, ignore_errors=True)


def _singles(classifier, scenes, paths) -> list[tuple[str, str]]:
    """Single digits named right, refused and named wrong by classify_files; per paper and table."""
    started = time.perf_counter()
    results = list(classifier.classify_files(paths))
    seconds = time.perf_counter() - started
    right = [result.digit is not None and classifier.class_names[result.digit] == scene.text
             for result, scene in zip(results, scenes, strict=True)]
    refused = [result.ok and result.digit is None for result in results]
    failed = [not result.ok for result in results]
    wrong = [result.digit is not None and not flag for result, flag in zip(results, right, strict=True)]
    rows = [("single digits right", _share(right)),
            ("  refused", f"{_share(refused)}  (files failed: {sum(failed)})"),
            ("  named wrong", _share(wrong))]
    rows += _by_kind("  ", scenes, right)
    rows.append(("  ms per photo (classify_files, one process)", f"{1000 * seconds / max(1, len(paths)):.0f}"))
    misses = [f"{scene.text}->{_named(classifier, result)} ({scene.paper}, {scene.background}, {scene.size[0]}x"
              f"{scene.size[1]}, {path.name})" for result, scene, flag, path in zip(results, scenes, right, paths,
                                                                                   strict=True) if not flag]
    if misses:
        rows.append(("  missed", "; ".join(misses[:12]) + (" ..." if len(misses) > 12 else "")))
    return rows


def _numbers(classifier, scenes, paths) -> list[tuple[str, str]]:
    """Numbers read exactly by read_files, and how well their boxes fit; per paper and table."""
    from digitlab.inference.read_files import read_files

    started = time.perf_counter()
    results = list(read_files(classifier, paths))
    seconds = time.perf_counter() - started
    texts = [result.reading.text if result.ok else None for result in results]
    exact = [text == scene.text for text, scene in zip(texts, scenes, strict=True)]
    digits_only = [text is not None and "".join(character for character in text if character.isdigit()) == scene.text
                   for text, scene in zip(texts, scenes, strict=True)]
    overlaps = [_iou(digit.box, box) for result, scene, flag in zip(results, scenes, exact, strict=True) if flag
                for digit, box in zip(result.reading.digits, scene.boxes, strict=True)]
    rows = [("numbers read exactly", _share(exact)),
            ("  their digits exactly (marks read between them left out)", _share(digits_only)),
            ("  files failed", str(sum(not result.ok for result in results)))]
    rows += _by_kind("  ", scenes, exact)
    if overlaps:
        rows.append(("  digit boxes of numbers read exactly: median IoU with the truth (photo pixels)",
                     f"{statistics.median(overlaps):.2f} (boxes under 0.5: {sum(value < 0.5 for value in overlaps)} "
                     f"of {len(overlaps)})"))
    rows.append(("  ms per photo (read_files, one process)", f"{1000 * seconds / max(1, len(paths)):.0f}"))
    misses = [f"{scene.text}->{text!r} ({scene.paper}, {scene.background}, {path.name})"
              for text, scene, flag, path in zip(texts, scenes, exact, paths, strict=True) if not flag]
    if misses:
        rows.append(("  missed", "; ".join(misses[:12]) + (" ..." if len(misses) > 12 else "")))
    return rows


def _finding(scenes, paths) -> list[tuple[str, str]]:
    """The share of photos whose crop (find_writing) holds every digit's box, and its time per photo."""
    from digitlab.inference.images import decode_picture_and_scale, find_writing

    held, found, times = [], [], []
    for scene, path in zip(scenes, paths, strict=True):
        picture, file_scale = decode_picture_and_scale(path, path.name)
        started = time.perf_counter()
        writing = find_writing(picture)
        times.append(time.perf_counter() - started)
        found.append(writing.found)
        left, top, right, bottom = (value * file_scale for value in writing.crop_box)
        box = scene.writing_box
        slack = 0.05 * (box[3] - box[1])  # the truth's boxes are the ink's to the pixel; the finder's, a blurred photo's
        held.append(left <= box[0] + slack and top <= box[1] + slack and right >= box[2] - slack and
                    bottom >= box[3] - slack)
    return [("writing found (a sheet or printed lines)", _share(found)),
            ("  its crop holds every digit", _share([flag and hold for flag, hold in zip(found, held, strict=True)])),
            ("  ms per photo (find_writing, on the decoded picture)", f"{1000 * statistics.median(times):.0f} median, "
                                                                       f"{1000 * max(times):.0f} most")]


def _by_kind(indent: str, scenes, flags) -> list[tuple[str, str]]:
    groups: dict[str, list[bool]] = defaultdict(list)
    for scene, flag in zip(scenes, flags, strict=True):
        groups[f"{scene.paper} paper"].append(flag)
        groups[f"{scene.background} table"].append(flag)
        groups[f"{scene.size[0]}x{scene.size[1]}" if scene.size[0] > scene.size[1] else
               f"{scene.size[1]}x{scene.size[0]} portrait"].append(flag)
    return [(f"{indent}  {name}", _share(values)) for name, values in sorted(groups.items())]


def _named(classifier, result) -> str:
    if not result.ok:
        return "error"
    return classifier.class_names[result.digit] if result.digit is not None else f"none ({result.reason})"


def _iou(first, second) -> float:
    left, top = max(first[0], second[0]), max(first[1], second[1])
    right, bottom = min(first[2], second[2]), min(first[3], second[3])
    inter = max(0, right - left) * max(0, bottom - top)
    union = ((first[2] - first[0]) * (first[3] - first[1]) + (second[2] - second[0]) * (second[3] - second[1]) - inter)
    return inter / union if union > 0 else 0.0


def _kept(labels_path: Path) -> list:
    """The scenes a --keep folder holds (photo and truth), as `write_scene_set` wrote them."""
    from digitlab.data.scenes import Scene

    scenes = []
    for line in labels_path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        scenes.append(Scene((labels_path.parent / record["path"]).read_bytes(), tuple(record["size"]), record["text"],
                            tuple(tuple(box) for box in record["boxes"]), record["paper"], record["background"],
                            record["turn"], tuple(tuple(corner) for corner in record["corners"])))
    return scenes


def _paths(labels_path: Path) -> list[Path]:
    folder = labels_path.parent
    return [folder / json.loads(line)["path"] for line in labels_path.read_text(encoding="utf-8").splitlines()]


def _share(flags) -> str:
    flags = list(flags)
    return f"{sum(flags) / len(flags):.1%} ({sum(flags)} of {len(flags)})" if flags else "-"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


if __name__ == "__main__":
    main()
