"""A trained model on images: `digitlab predict`, `digitlab serve`."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import typer

from digitlab.analysis.formatting import format_probability
from digitlab.cli.output import (
    EXIT_FAILED,
    console,
    error_console,
    failed_summary,
    json_safe,
    print_file_error,
    printable,
)
from digitlab.inference.rejection import DEFAULT_MIN_CONFIDENCE, NOT_A_DIGIT


def predict(
    inputs: list[Path] = typer.Argument(..., help="Image files (PNG, JPEG, BMP, GIF, TIFF, WebP) or folders of them.",
                                        show_default=False),
    model: Path | None = typer.Option(None, help="A run folder, a .keras file or an exported .onnx file. "
                                         "Default: the latest finished run under runs/, else the bundled reader."),
    top: int = typer.Option(3, min=1, help="How many most probable digits to show per image (text output; "
                                         "--json always gives every probability)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line: path, digit, probabilities "
                                 "(digit null and a reason when refused; or path, error)."),
    min_confidence: float = typer.Option(DEFAULT_MIN_CONFIDENCE, min=0.0, max=1.0, help="Name a digit only when "
                                         "its probability is at least this; else the answer is 'unsure'."),
    save_preprocessed: Path | None = typer.Option(None, help="Write the 28x28 image the network saw, per "
                                                     "input, into this folder (PNG; never over an input image, "
                                                     "nor over existing files without --overwrite)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Let --save-preprocessed replace files already in "
                                   "its folder (never an input image)."),
    workers: int | None = typer.Option(None, min=1, help="Processes reading images in parallel. Default: "
                                          "one per core for many images."),
    backend: str | None = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
) -> None:
    """Read digits in your own images, prepared the way MNIST was made; exit status 1 if any file failed.

    An image that is not one digit gets no digit and a reason instead ("not a digit", "several
    digits": use `digitlab read`, "unsure"); that is an answer, not a failure.
    """
    from digitlab.backend import available_cores
    from digitlab.inference.loading import load_classifier
    from digitlab.inference.preparer import ImagePreparer

    paths = _image_paths(inputs)
    outputs = _output_folder(save_preprocessed, paths, overwrite, "--save-preprocessed")  # checked before any work
    # Workers pay off from a few dozen images; started before Keras is imported, they fork quickly
    # and start while the model loads.
    count = workers if workers is not None else (available_cores() if len(paths) >= 64 else 1)
    preparer = ImagePreparer(count) if count > 1 else None
    failed: list[str] = []
    try:
        # With its line model: a reader's second opinion on every digit named (rejection.DIGIT_EVIDENCE_LEVEL).
        classifier = load_classifier(model, backend=backend, notice=_notice)
        results = classifier.classify_files(paths, preparer=preparer, save_preprocessed=outputs,
                                            min_confidence=min_confidence)
        for result in results:
            if as_json:
                print(json.dumps(json_safe(result.to_dict())), flush=True)
            elif result.ok:
                ranked = result.top(top)
                names = classifier.class_names
                # One rounding of probabilities for the command line, the API and the page.
                listed = " | ".join(f"{_label(names, index)} {format_probability(probability)}"
                                    for index, probability in ranked)
                answer = f"{_label(names, result.digit)} ({format_probability(ranked[0][1])})" \
                    if result.digit is not None else \
                    f"no digit: {result.reason}"
                print(f"{printable(str(result.path))}: {answer}  {listed}", flush=True)
            else:
                print_file_error(result.error)
            if not result.ok:
                failed.append(str(result.path))
    finally:
        if preparer is not None:
            preparer.close()
    _exit_if_failed(failed, len(paths))


def read(
    inputs: list[Path] = typer.Argument(..., help="Images of a line of digits (PNG, JPEG, ...) or folders of them.",
                                        show_default=False),
    model: Path | None = typer.Option(None, help="A run folder, a .keras file or an exported .onnx file. "
                                         "Default: the latest finished run under runs/, else the bundled reader "
                                         "(to train your own reader: digitlab train --recipe reader)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line: path, text, digits (digit, box, "
                                 "probabilities), confidence, characters (character, kind, box, confidence) (or "
                                 "path, error)."),
    save_annotated: Path | None = typer.Option(None, help="Write each image with its digits' boxes drawn into this "
                                                  "folder (PNG; never over an input image, nor over existing "
                                                  "files without --overwrite)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Let --save-annotated replace files already in its "
                                   "folder (never an input image)."),
    min_confidence: float = typer.Option(DEFAULT_MIN_CONFIDENCE, min=0.0, max=1.0, help="Leave out digits read "
                                         "with less probability than this."),
    digits_only: bool = typer.Option(False, "--digits-only", help="Read the digits alone: leave out the "
                                     "separators written between them (. , - / : and spaces) and the JSON's "
                                     "`characters`."),
    backend: str | None = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
) -> None:
    """Read whole numbers: one line of handwritten digits per image, with the separators written between them
    ("12.50", "2024-12-06", "555 0199"); exit status 1 if any file failed."""
    import dataclasses

    from digitlab.inference.loading import load_classifier
    from digitlab.inference.read_files import read_files

    paths = _image_paths(inputs)
    outputs = _output_folder(save_annotated, paths, overwrite, "--save-annotated")  # checked before any work
    classifier = load_classifier(model, backend=backend, notice=_notice)
    failed: list[str] = []
    for result in read_files(classifier, paths, min_confidence=min_confidence, save_annotated=outputs):
        if digits_only and result.reading is not None:
            result = dataclasses.replace(result, reading=result.reading.digits_only())
        if as_json:
            print(json.dumps(json_safe(result.to_dict())), flush=True)
        elif result.ok:
            reading = result.reading
            answer = f"{reading.text} ({format_probability(reading.confidence)})" if reading.text else "no digits read"
            print(f"{printable(str(result.path))}: {answer}", flush=True)
        else:
            print_file_error(result.error)
        if not result.ok:
            failed.append(str(result.path))
    _exit_if_failed(failed, len(paths))


def serve_command(
    model: Path | None = typer.Option(None, help="A run folder, a .keras file or an exported .onnx file. "
                                         "Default: the latest finished run under runs/, else the bundled reader."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; 0.0.0.0 lets other machines in."),
    port: int = typer.Option(8000, min=0, max=65535, help="Port to listen on (0: any free port)."),
    cors: list[str] = typer.Option([], "--cors", help="Let pages from this origin call the API (e.g. "
                                   "http://localhost:3000, or '*' for any); repeat for several. Default: none."),
    allowed_host: list[str] = typer.Option([], "--allowed-host", help="Also answer requests with this Host name "
                                           "('*': any); repeatable. Always: localhost, 127.0.0.1, [::1], --host; "
                                           "with --host 0.0.0.0 also the machine's name and any IP address."),
    workers: int = typer.Option(1, min=1, help="Server processes, each with its own copy of the model (one "
                                "process uses about one core)."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request (slower)."),
    backend: str | None = typer.Option(None, help="jax (default), tensorflow or torch; else $KERAS_BACKEND."),
    header_timeout: float = typer.Option(10.0, min=0.1, help="Seconds a request's headers may take to arrive "
                                         "(else 408 and the connection closes)."),
    idle_timeout: float = typer.Option(5.0, min=0.1, help="Seconds a keep-alive connection may wait idle for its "
                                       "next request."),
    max_header_kb: int = typer.Option(64, min=1, help="Largest request line and headers, in KB (else 431)."),
    max_upload_mb: float = typer.Option(5.0, min=0.01, help="Largest request body, in MB (else 413)."),
    max_connections: int | None = typer.Option(None, min=1, help="Open connections per worker; at the cap a new "
                                               "one closes the longest idle one. Default: 1000, or fewer where "
                                               "the open-file limit (ulimit -n) is lower."),
) -> None:
    """Draw digits in the browser and classify images over HTTP (FastAPI on uvicorn); Ctrl-C stops it."""
    from rich.markup import escape

    from digitlab.web.connections import ConnectionLimits
    from digitlab.web.server import ServerLimits, serve

    limits = ServerLimits(ConnectionLimits(header_timeout_seconds=header_timeout, idle_timeout_seconds=idle_timeout,
                                           max_header_bytes=max(1024, max_header_kb * 1024),
                                           max_connections=max_connections),
                          max_body_bytes=max(1024, round(max_upload_mb * 1024 * 1024)))

    def ready(address: str, source: str) -> None:
        address = escape(address)
        console.print(f"serving {escape(source)} on [bold]{address}[/]  (the page: {address}/, "
                      f"API docs: {address}/docs); Ctrl-C stops", highlight=False, soft_wrap=True)

    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how a server is stopped
        serve(model, host=host, port=port, cors_origins=cors, allowed_hosts=allowed_host, backend=backend,
              access_log=access_log, workers=workers, ready=ready, limits=limits)



def export_command(
    run_dir: Path = typer.Argument(..., help="A run folder written by `digitlab train`."),
    format: str = typer.Option("onnx", "--format", help="The format to export to (onnx: the one there is)."),
    output: Path | None = typer.Option(None, help="The classifier's file (default RUN_DIR/model.onnx); a reader "
                                       "run's line model goes beside it as <name>.line.onnx."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace files that exist."),
) -> None:
    """Export a run to a single-file ONNX model (and its line model), checked against Keras before it is written."""
    from digitlab.errors import ExportTargetError
    from digitlab.inference.export import CHECK_TOLERANCE, export_run

    if format != "onnx":
        raise ExportTargetError(f"unknown export format {format!r}; the one there is: onnx")
    result = export_run(run_dir, output=output, overwrite=overwrite)
    lines = f" and {result.checked_lines} lines" if result.checked_lines else ""
    console.print(f"checked on {result.checked_images} test images{lines}: ONNX Runtime gives Keras's answers, "
                  f"probabilities within {result.largest_difference:.1g} (allowed {CHECK_TOLERANCE:g})", highlight=False)
    for path in result.paths:
        console.print(f"written {path} ({path.stat().st_size / 1e6:.1f} MB)", highlight=False)


def _notice(message: str) -> None:
    """One line on stderr that does not mix with the answers on stdout (which may be JSON)."""
    error_console.print(message, markup=False, highlight=False, soft_wrap=True)


def _label(names, index: int) -> str:
    """A class as printed: "7" for digits, "9 Ankle boot" for named classes."""
    if names[index] == str(index) or names[index] == NOT_A_DIGIT:
        return names[index]
    return f"{index} {names[index]}"


def _image_paths(inputs: list[Path]) -> list[Path]:
    """The image files given and those in the folders given; none at all is a bad argument."""
    from digitlab.errors import ConfigError
    from digitlab.inference.predict import image_files

    paths = image_files(inputs)
    if not paths:
        raise ConfigError(f"no image files found in {', '.join(map(str, inputs))} "
                          "(looked for .png, .jpg, .jpeg, .bmp, .gif, .tif, .tiff, .webp)")
    return paths


def _output_folder(folder: Path | None, paths: list[Path], overwrite: bool, option: str):
    """The folder an option names, checked (writable, no input and no existing file replaced) before any
    work; None when the option is not given. Raises OutputFolderError (exit 2)."""
    if folder is None:
        return None
    from digitlab.storage import OutputFolder

    return OutputFolder(folder, paths, overwrite=overwrite, option=option)


def _exit_if_failed(failed: list[str], count: int) -> None:
    """Say which files failed (the first FAILED_NAMES_SHOWN of them), and exit with status 1, if any did."""
    if failed:
        error_console.print(failed_summary(failed, count), markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
