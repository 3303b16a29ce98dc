"""The line model: strips from pictures (data/line_strip.py), its training data and training loop
(training/line_model.py), CTC decoding and boxes (inference/line_reading.py), and reading through it."""

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digitlab.data import line_strip
from digitlab.inference import line_reading, loading
from digitlab.training import line_model


def digit_like_images(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(count, 28, 28) uint8 strokes, light on black, with labels: a bar for odd labels, a ring for even ones."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count)
    images = np.zeros((count, 28, 28), np.uint8)
    for image, label in zip(images, labels, strict=True):
        canvas = Image.new("L", (28, 28), 0)
        draw = ImageDraw.Draw(canvas)
        if label % 2:
            draw.line((14, 4, 14, 24), fill=255, width=3)
        else:
            draw.ellipse((7, 4, 21, 24), outline=255, width=3)
        image[:] = np.asarray(canvas)
    return images, labels


def paper_line(marks: int = 3, gap: int = 30, scale: int = 3) -> Image.Image:
    """Dark bars on light paper, `gap` pixels apart (at 1x), enlarged `scale` times."""
    canvas = Image.new("L", (40 + marks * (6 + gap), 60), 235)
    draw = ImageDraw.Draw(canvas)
    for index in range(marks):
        left = 20 + index * (6 + gap)
        draw.line((left, 15, left + 3, 45), fill=30, width=4)
    return canvas.resize((canvas.width * scale, canvas.height * scale), Image.Resampling.BILINEAR)


# --- data/line_strip.py ---------------------------------------------------------------------------------


def test_a_line_becomes_a_strip_of_fixed_height_padded_to_whole_steps():
    found = line_strip.find_line_ink(paper_line(marks=4))
    assert found is not None and len(found.pieces) == 4
    strip = line_strip.line_strip(found)
    assert strip.pixels.shape[0] == line_strip.STRIP_HEIGHT and strip.pixels.shape[1] % line_strip.STRIP_STEP == 0
    assert strip.pixels.dtype == np.float32 and strip.pixels.min() >= 0.0 and strip.pixels.max() <= 1.0
    inked_rows = np.flatnonzero(strip.pixels.max(axis=1) > 0.3)
    assert inked_rows[0] <= line_strip.STRIP_MARGIN + 1 and inked_rows[-1] >= line_strip.STRIP_HEIGHT - 3
    assert strip.used <= strip.pixels.shape[1] and not strip.pixels[:, strip.used:].any()


def test_blank_paper_and_a_bar_have_no_line():
    assert line_strip.find_line_ink(Image.new("L", (200, 80), 230)) is None
    bar = Image.new("L", (300, 80), 230)
    ImageDraw.Draw(bar).rectangle((20, 30, 280, 50), fill=20)  # as thick as it is tall: no digits
    assert line_strip.find_line_ink(bar) is None


def test_a_long_line_keeps_its_size_and_is_cut_into_windows_at_its_gaps():
    found = line_strip.find_line_ink(paper_line(marks=40, gap=30, scale=1))
    strip = line_strip.line_strip(found).pixels
    assert strip.shape[1] > 2 * line_strip.STRIP_WIDEST  # not squeezed: 40 marks keep their size
    step = line_model.COLUMNS_PER_STEP
    windows = line_strip.strip_windows(strip, step)
    assert len(windows) >= 3 and windows[0][0] == 0
    joined = np.zeros_like(strip)
    for (start, window), following in zip(windows, [*windows[1:], (strip.shape[1], None)], strict=True):
        stop = following[0]
        assert window.shape[1] <= line_strip.STRIP_WIDEST and window.shape[1] % line_strip.STRIP_STEP == 0
        assert start % step == 0 and not window[:, stop - start:].any()  # padding only past its own columns
        if stop < strip.shape[1]:
            assert strip[:, stop].max() < line_strip.WINDOW_EMPTY_LEVEL  # cut where no mark is
        joined[:, start:stop] = window[:, :stop - start]
    assert np.array_equal(joined, strip)
    short = strip[:, :line_strip.STRIP_WIDEST]
    assert line_strip.strip_windows(short, step)[0][1] is short and len(line_strip.strip_windows(short, step)) == 1


# --- training/line_model.py -----------------------------------------------------------------------------


def test_synthesized_strips_carry_their_digits_as_ctc_targets():
    images, labels = digit_like_images(64)
    strips, targets = line_model.synthesize_strips(images, labels, 40, seed=3, workers=1)
    assert strips.dtype == np.uint8 and strips.shape[1:] == (line_strip.STRIP_HEIGHT, line_model.TRAIN_WIDTH)
    assert len(strips) == len(targets) >= 36  # the front end finds nearly every line's ink
    lengths = (targets != line_model.BLANK).sum(axis=1)
    assert lengths.max() <= line_model.TARGET_LENGTH and (lengths == 0).any()  # some lines hold no digit
    for row in targets:  # digits (classes 1-10) and separators (11 on) first, then padding
        assert not row[(row != 0).sum():].any()
        assert set(row[row != 0]) <= set(range(1, line_model.CLASSES))
        assert (row[row != 0] <= 10).sum() <= line_model.TRAIN_LENGTHS[1]
    again, _ = line_model.synthesize_strips(images, labels, 40, seed=3, workers=1)
    assert np.array_equal(strips, again)  # the seed fixes the lines


def test_some_training_lines_have_separators_between_digits_and_most_have_none():
    images, labels = digit_like_images(64)
    _, targets = line_model.synthesize_strips(images, labels, 300, seed=5, workers=1)
    separators = targets >= line_model.DIGIT_CLASSES
    marked = separators.any(axis=1)
    assert 0.1 < marked.mean() < 0.4  # SEPARATOR_LINES of the lines with two digits or more
    assert {int(value) for value in targets[separators]} == set(range(line_model.DIGIT_CLASSES, line_model.CLASSES))
    for row in targets[marked]:  # never first or last, never two in a row: between digits
        classes = row[row != 0]
        assert classes[0] <= 10 and classes[-1] <= 10
        assert not any(a > 10 and b > 10 for a, b in zip(classes, classes[1:], strict=False))


def test_training_strips_are_padded_or_cut_to_the_training_width_and_squeezed_only_when_their_ink_is_wider():
    width = line_model.TRAIN_WIDTH
    narrow = np.zeros((line_strip.STRIP_HEIGHT, 64), np.float32)
    narrow[5:15, 10:20] = 1.0
    padded = line_model.to_train_width(narrow)
    assert padded.shape == (line_strip.STRIP_HEIGHT, width) and np.array_equal(padded[:, :64], narrow)
    blank_tail = np.zeros((line_strip.STRIP_HEIGHT, width + 64), np.float32)
    blank_tail[5:15, width - 20:width - 10] = 1.0  # ink ends inside the training width: cut, not squeezed
    assert np.array_equal(line_model.to_train_width(blank_tail), blank_tail[:, :width])
    wide = np.zeros((line_strip.STRIP_HEIGHT, 2 * width), np.float32)
    wide[5:15, :] = 1.0
    squeezed = line_model.to_train_width(wide)
    assert squeezed.shape == (line_strip.STRIP_HEIGHT, width) and squeezed[10, width - 3] > 0.9


def test_the_line_model_gives_ctc_logits_per_four_columns_and_its_lowered_pass_matches_keras():
    import jax.numpy as jnp

    from digitlab.training import lowering

    model = line_model.build_line_model(seed=0)
    strips = np.random.default_rng(0).random((2, line_strip.STRIP_HEIGHT, 96), dtype=np.float32)[..., None]
    keras_logits = np.asarray(model(strips, training=False))
    assert keras_logits.shape == (2, 96 // line_model.COLUMNS_PER_STEP, line_model.CLASSES)
    lowered, _ = lowering.forward_function(model)([v.value for v in model.trainable_variables],
                                                  [v.value for v in model.non_trainable_variables],
                                                  jnp.asarray(strips), training=False)
    np.testing.assert_allclose(np.asarray(lowered), keras_logits, atol=1e-5)


def test_fitting_lowers_the_ctc_loss_and_changes_the_models_weights():
    images, labels = digit_like_images(64)
    strips, targets = line_model.synthesize_strips(images, labels, 96, seed=1, workers=1)
    model = line_model.build_line_model(seed=0)
    before = [variable.numpy().copy() for variable in model.trainable_variables]
    losses = line_model.fit_line_model(model, strips, targets, epochs=4, batch_size=4, learning_rate=0.003, seed=0)
    assert len(losses) == 4 and all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert any(not np.array_equal(old, variable.numpy()) for old, variable in zip(before, model.trainable_variables,
                                                                                 strict=True))


def test_epoch_chunks_batch_strips_of_one_width_and_never_repeat_a_strip():
    widths = np.array([64] * 70 + [128] * 40 + [256] * 5)
    chunks = line_model._shuffled_chunks(widths, batch_size=4, generator=np.random.default_rng(0))
    seen = np.concatenate([members.ravel() for _, members in chunks])
    assert len(seen) == len(set(seen.tolist()))
    for width, members in chunks:
        assert members.shape == (line_model.CHUNK, 4) and (widths[members] == width).all()
    assert {width for width, _ in chunks} == {64, 128}  # five 256-wide strips fill no chunk of 32


def test_bad_training_arrays_are_refused():
    model = line_model.build_line_model(seed=0)
    with pytest.raises(ValueError, match="as many strips as targets"):
        line_model.fit_line_model(model, np.zeros((10, 32, 64), np.uint8), np.zeros((9, 8), np.int32), 1, 4, 0.001, 0)
    with pytest.raises(ValueError, match="count must be 1 or more"):
        line_model.synthesize_strips(*digit_like_images(4), 0, seed=0)


# --- inference/line_reading.py --------------------------------------------------------------------------


def logits_for(path: list[int], classes: int = line_model.CLASSES) -> np.ndarray:
    """(steps, classes) logits that put nearly all probability on each step's class of `path`."""
    logits = np.full((len(path), classes), -8.0, np.float32)
    logits[np.arange(len(path)), path] = 8.0
    return logits


def test_ctc_decoding_merges_repeats_drops_blanks_and_keeps_doubled_digits_apart():
    # classes: 0 blank, d + 1 digit d. "4" over two steps, blank, "4" again, "2".
    runs = line_reading.decode_runs(logits_for([0, 5, 5, 0, 5, 0, 3, 3, 0]))
    assert [run.digit for run in runs] == [4, 4, 2]
    assert [(run.first_step, run.last_step) for run in runs] == [(1, 2), (4, 4), (6, 7)]
    for run in runs:
        assert run.probabilities.shape == (10,) and run.probabilities.argmax() == run.digit
        assert abs(float(run.probabilities.sum()) - 1.0) < 1e-5 and 0.99 < run.confidence <= 1.0
    assert line_reading.decode_runs(logits_for([0, 0, 0])) == []


def test_ctc_decoding_reads_separator_classes_as_marks_and_digit_evidence_leaves_them_out():
    point, slash = (line_model.DIGIT_CLASSES + line_model.SEPARATORS.index(mark) for mark in "./")
    runs = line_reading.decode_runs(logits_for([2, 2, 0, point, 0, 6, slash, slash, 3]))
    assert [(run.digit, run.separator) for run in runs] == [(1, ""), (-1, "."), (5, ""), (-1, "/"), (2, "")]
    assert all(0.99 < run.confidence <= 1.0 for run in runs)

    class Network:  # every step a point: no digit anywhere
        input_shape, output_shape = (None, line_strip.STRIP_HEIGHT, None, 1), (None, None, line_model.CLASSES)

        def forward(self, inputs):
            return np.tile(logits_for([point])[None], (len(inputs), inputs.shape[2] // 4, 1))

    reader = line_reading.LineReader(Network(), "points")
    assert reader.digit_evidence(np.ones((2, 28, 28), np.float32)).max() < 0.01


def test_an_unsure_separator_is_read_as_the_digit_the_model_ranks_next_or_left_out():
    found = line_strip.find_line_ink(paper_line(marks=3, gap=10))  # marks a third of their height apart: no spaces
    view = line_reading.LineView(found, line_strip.line_strip(found), 1.0)
    steps = [int(np.mean(np.flatnonzero(view.strip.pixels[:, start:stop].max(axis=0) > 0.3)) + start)
             // line_model.COLUMNS_PER_STEP for start, stop in _thirds(view.strip)]  # each mark's middle
    ones = np.eye(10, dtype=np.float32)[1]
    digit = line_reading.DigitRun(4, steps[0], steps[0], np.eye(10, dtype=np.float32)[4], 0.99)
    unsure_slash = line_reading.DigitRun(-1, steps[1], steps[1], ones, 0.6, "/", digit_mass=0.35)
    sure_slash = line_reading.DigitRun(-1, steps[1], steps[1], ones, 0.95, "/", digit_mass=0.04)
    lost_point = line_reading.DigitRun(-1, steps[1], steps[1], ones, 0.6, ".", digit_mass=0.01)
    last = line_reading.DigitRun(4, steps[2], steps[2], np.eye(10, dtype=np.float32)[4], 0.99)
    assert line_reading.reading_from_runs(view, [digit, sure_slash, last], 0.5).text == "4/4"
    reading = line_reading.reading_from_runs(view, [digit, unsure_slash, last], 0.3)
    assert reading.text == "414" and [d.digit for d in reading.digits] == [4, 1, 4]  # a "1" the model half took for "/"
    assert reading.characters[1].confidence == pytest.approx(0.35)
    assert line_reading.reading_from_runs(view, [digit, lost_point, last], 0.5).text == "44"


def test_a_line_model_of_digits_only_still_reads():
    class Network:  # trained before separators: blank and ten digits
        input_shape, output_shape = (None, line_strip.STRIP_HEIGHT, None, 1), (None, None, line_model.DIGIT_CLASSES)

        def forward(self, inputs):
            return np.tile(logits_for([0, 4, 0], classes=line_model.DIGIT_CLASSES)[None],
                           (len(inputs), inputs.shape[2] // 12, 1))

    reader = line_reading.LineReader(Network(), "digits only")
    found = line_strip.find_line_ink(paper_line(marks=2))
    runs = reader.read_strips([line_strip.line_strip(found).pixels])[0]
    assert runs and {run.digit for run in runs} == {3} and not any(run.separator for run in runs)


def test_each_digit_gets_the_ink_between_its_neighbours_midpoints():
    found = line_strip.find_line_ink(paper_line(marks=3, gap=30))
    strip = line_strip.line_strip(found)
    # Put one run at each mark's centre, as a model would.
    columns = [int(np.mean(np.flatnonzero(strip.pixels[:, start:stop].max(axis=0) > 0.3))) + start
               for start, stop in _thirds(strip)]
    step = line_model.COLUMNS_PER_STEP
    runs = [line_reading.DigitRun(1, column // step, column // step, np.eye(10, dtype=np.float32)[1], 0.9)
            for column in columns]
    boxes = line_reading.run_boxes(found, strip, runs)
    pieces = sorted((columns_slice.start, columns_slice.stop) for _, _, columns_slice in found.pieces)
    for (x0, _, x1, _), (left, right) in zip(boxes, pieces, strict=True):
        assert abs(x0 - left) <= 1 and abs(x1 - right) <= 1


def test_runs_all_below_the_threshold_read_as_nothing():
    found = line_strip.find_line_ink(paper_line(marks=2))
    view = line_reading.LineView(found, line_strip.line_strip(found), 1.0)
    unsure = [line_reading.DigitRun(3, 2, 3, np.eye(10, dtype=np.float32)[3], 0.3)]
    assert line_reading.reading_from_runs(view, unsure, min_confidence=0.5).text == ""
    assert line_reading.reading_from_runs(view, unsure, min_confidence=0.2).text == "3"
    assert line_reading.run_boxes(found, view.strip, []) == []


def _thirds(strip):
    step = strip.used // 3
    return [(0, step), (step, 2 * step), (2 * step, strip.used)]


def test_a_run_without_its_line_model_file_has_no_line_reader(tmp_path):
    assert loading.load_line_reader(tmp_path) is None and loading.load_line_reader(None) is None


def test_a_model_that_is_not_a_line_model_is_refused(tmp_path):
    import keras

    from digitlab.errors import ModelError
    from digitlab.inference.keras_network import KerasNetwork

    digit_model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ModelError, match="not a line model"):
        line_reading.LineReader(KerasNetwork(digit_model), tmp_path / "line_model.keras")


def test_reading_files_with_a_line_model_agrees_with_one_picture_at_a_time_and_reports_a_bad_file(tmp_path):
    from digitlab.inference.read_files import read_files
    from digitlab.inference.reading import read_number

    line_model.build_line_model(seed=0).save(tmp_path / line_model.LINE_MODEL_FILE)

    class LineClassifier:  # what reading needs of a classifier that has a line model
        line_reader = loading.load_line_reader(tmp_path)
        class_names = [str(digit) for digit in range(10)]

    paper_line(marks=3).save(tmp_path / "three.png")
    paper_line(marks=5, gap=20).save(tmp_path / "five.png")
    (tmp_path / "broken.png").write_bytes(b"not an image")
    paths = [tmp_path / "three.png", tmp_path / "broken.png", tmp_path / "five.png"]
    results = list(read_files(LineClassifier(), paths, min_confidence=0.0, save_annotated=tmp_path / "seen"))
    assert [result.ok for result in results] == [True, False, True] and "broken.png" in results[1].error
    for result in (results[0], results[2]):
        alone = read_number(LineClassifier(), result.path, min_confidence=0.0)
        assert result.reading.to_dict() == alone.to_dict()
        assert result.annotated_path.is_file()
    with Image.open(results[2].annotated_path) as annotated:
        assert annotated.size == Image.open(tmp_path / "five.png").size


def test_a_lone_digit_read_where_the_classifier_sees_no_digit_is_taken_away():
    from digitlab.inference import rejection

    class RefusingClassifier:  # an 11-class classifier that calls everything "not a digit"
        class_names = [*map(str, range(10)), rejection.NOT_A_DIGIT]

        def probabilities(self, framed):
            assert framed.shape[1:] == (28, 28)
            return np.tile(np.eye(11, dtype=np.float32)[10], (len(framed), 1))

        def decide(self, probabilities, framed, min_confidence):
            return rejection.decide(probabilities, framed, self.class_names, min_confidence, True)

    one, two = (line_strip.find_line_ink(paper_line(marks=count)) for count in (1, 2))
    views = [line_reading.LineView(line, line_strip.line_strip(line), 1.0) for line in (one, two)]
    run = line_reading.DigitRun(7, 2, 3, np.eye(10, dtype=np.float32)[7], 0.95)
    kept = line_reading.without_lone_marks(RefusingClassifier(), views, [[run], [run, run]])
    assert kept == [[], [run, run]]  # only the lone digit is the classifier's to refuse

    class TenClasses(RefusingClassifier):
        class_names = [*map(str, range(10))]

    assert line_reading.without_lone_marks(TenClasses(), views, [[run], [run, run]]) == [[run], [run, run]]
