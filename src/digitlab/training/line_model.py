"""The line model: reads a whole line of digits at once, trained with CTC on synthetic photos.

A small convolutional network looks at the line's strip (`data/line_strip.py`: the ink scaled to 24
rows) and says, for every 4 columns, which digit is there or "nothing new" (CTC's blank), as in
keras-io's "OCR model for reading captchas" (convolutions, then a sequence layer, then CTC), with
convolutions along the line in place of its recurrent layer: the whole model is then convolutions,
which `lowering.py` runs fast in a scanned epoch on a CPU. It needs no cuts: touching and overlapping
neighbours are read as they are.

Its training lines are MNIST *training* digits set side by side (`data/lines.py`: apart, touching or
overlapping, jittered, slanted), photographed, and run through the very front end reading uses, so
the model sees what it will be shown. Some lines have the marks people write between digits drawn
among them (points, commas, dashes, slashes, colons: SEPARATORS, classes of their own) or a wider gap
(a space, which the reader measures rather than the model reads).

    strips, targets = synthesize_strips(train_images, train_labels, count=60_000, seed=0)
    model = build_line_model()
    fit_line_model(model, strips, targets, EPOCHS, BATCH_SIZE, LEARNING_RATE, seed=0)
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from digitlab import storage
from digitlab.backend import available_cores
from digitlab.data.line_strip import STRIP_HEIGHT, find_line_ink, line_strip
from digitlab.data.lines import LAYOUTS, SPACE, compose_glyphs
from digitlab.data.nondigits import render_non_digits
from digitlab.data.photograph import render_photo
from digitlab.training import lowering

# CTC's blank is class 0 (Keras's convention); digit d is class d + 1; then the separators, in this order.
BLANK = 0
SEPARATORS = (".", ",", "-", "/", ":")
CLASSES = 11 + len(SEPARATORS)
# The classes of line models trained before separators were: blank and the ten digits (they still read).
DIGIT_CLASSES = 11
# Filters of the line model's first convolution (2x2 patches, stride 2) and of its two 3x3 convolutions
# (each followed by pooling). The patches in place of a 3x3 convolution and pooling at full resolution
# make a training step 1.5x faster (with 24 filters in place of 32 in the second) and read as well.
CONV_FILTERS = (16, 24, 64)
# Channels of the convolution over the rows and of the two along the line; dropout after the first.
LINE_FILTERS = 96
DROPOUT = 0.2
# The line model's output has one step per this many strip columns (its stride-2 patches, then one 2x2
# pooling). Two steps per 4 columns (an output twice as fine, room for a blank between narrow
# neighbours) read no better.
COLUMNS_PER_STEP = 4
# Training lines: this many digits (inclusive), strips padded (or squeezed) to TRAIN_WIDTH columns.
TRAIN_LENGTHS = (1, 8)
TRAIN_WIDTH = 384
# Shares of training lines made of marks that are not digits only (their text is ""), and of lines of
# digits with one such mark among them (a "$", a letter, a scribble: read as nothing).
NON_DIGIT_LINES = 0.1
MARKED_LINES = 0.1
# Share of training lines of at least two digits with separators between them (SEPARATORS, or a space,
# drawn by lines.draw_mark), 1 to MOST_SEPARATORS of them; the rest have none, so that the model
# learns not to invent one. Each separator is a space with SPACE_SHARE (the model reads the gap as nothing).
# On tuning lines no benchmark uses (reader recipe, 3,000 lines without separators): with 30% of 45,000
# lines, 83.7% read exactly, against 86.7% for a line model that never saw a separator; with 20% of
# 60,000 lines, 86.1% (and numbers with separators 80.7% -> 82.6%).
SEPARATOR_LINES = 0.2
MOST_SEPARATORS = 3
SPACE_SHARE = 0.15
# A training line's target: its digits and separators (classes), then 0 as padding.
TARGET_LENGTH = TRAIN_LENGTHS[1] + MOST_SEPARATORS
# How the line model trains (the reader recipe's; chosen on synthetic lines of training digits).
EPOCHS = 8
BATCH_SIZE = 64
LEARNING_RATE = 0.005
# Training batches of strips are cut to the width of their longest line, rounded up to this many
# columns; CHUNK batches of one width run in one compiled call.
WIDTH_BUCKET = 64
CHUNK = 8
# Lines synthesised per task handed to a worker process.
LINES_PER_TASK = 1000
# The file a run keeps its line model in, beside model.keras.
LINE_MODEL_FILE = "line_model.keras"
# Each digit of a "large" model's training lines is drawn thicker or thinner than its writer drew it, and
# slanted, each with this chance: handwriting varies this way beyond MNIST's writers.
STYLE_CHANCE = 0.5
# Most degrees a digit is slanted by (a shear, either way) when its style is varied.
STYLE_SLANT_DEGREES = 18.0


@dataclasses.dataclass(frozen=True)
class LineModelSize:
    """How large a line model is and how long it trains (TrainingConfig.line_model_size names one)."""

    # Filters of the 2x2 stride-2 patches and of the two 3x3 convolutions.
    conv_filters: tuple[int, int, int]
    # Channels of the convolution over the rows and of those along the line.
    line_filters: int
    # Convolutions 5 steps wide along the line (each widens what one step sees by about one digit).
    line_convs: int
    # Passes over the training lines.
    epochs: int
    # Whether each training digit's stroke width and slant are varied (STYLE_CHANCE).
    vary_style: bool


SIZES = {
    # The reader recipe's: within its 10 minutes on 2 cores.
    "standard": LineModelSize(CONV_FILTERS, LINE_FILTERS, 2, EPOCHS, vary_style=False),
    # The bundled reader's (reader-large): wider, sees further along the line, and digits varied in style.
    "large": LineModelSize((16, 32, 64), 128, 3, EPOCHS, vary_style=True),
}


# ----------------------------------------------------------------------------- prepare data


def synthesize_strips(digit_images: np.ndarray, labels: np.ndarray, count: int, seed: int,
                      workers: int = 2, vary_style: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """`count` photographed lines of the given digits, as the line model's training strips; with
    `vary_style`, each digit's stroke width and slant changed at random first (`vary_digit_style`).

    Returns:
        (strips, targets): (n, STRIP_HEIGHT, TRAIN_WIDTH) uint8 ink (0-255), and (n, TARGET_LENGTH)
        int32 classes (digit + 1, a separator's class, then 0 as padding). n is `count` less the rare photo whose ink the
        front end cannot find.
    """
    if count < 1:
        raise ValueError(f"count must be 1 or more, got {count}")
    tasks = [(min(LINES_PER_TASK, count - start), seed * 1_000_003 + index, vary_style)
             for index, start in enumerate(range(0, count, LINES_PER_TASK))]
    if workers > 1 and len(tasks) > 1:
        # Forked while JAX is not loaded (milliseconds); else spawned: forking a process that runs JAX can deadlock.
        method = "spawn" if "jax" in sys.modules else "fork"
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method), initializer=_keep_digits,
                                 initargs=(digit_images, labels)) as pool:
            chunks = list(pool.map(_strips_task, tasks))
    else:
        _keep_digits(digit_images, labels)
        chunks = [_strips_task(task) for task in tasks]
    return np.concatenate([strips for strips, _ in chunks]), np.concatenate([targets for _, targets in chunks])


_DIGITS: tuple[np.ndarray, np.ndarray] | None = None


def _keep_digits(digit_images: np.ndarray, labels: np.ndarray) -> None:
    global _DIGITS
    _DIGITS = (digit_images, labels)


def _strips_task(task: tuple[int, int, bool]) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    count, seed, vary_style = task
    digit_images, labels = _DIGITS
    rng = np.random.default_rng(seed)
    marks, _ = render_non_digits(max(1, round(count * NON_DIGIT_LINES * 2)), seed)
    strips, targets = [], []
    for index in range(count):
        images, text = _line_glyphs(digit_images, labels, marks, rng)
        if vary_style:
            images = np.stack([vary_digit_style(image, rng) for image in images])
        glyphs, text = _with_separators(list(images), text, rng)
        ink, _ = compose_glyphs(glyphs, rng, LAYOUTS[index % len(LAYOUTS)])
        photo, _ = render_photo(ink, rng)
        found = find_line_ink(Image.fromarray(photo))
        if found is None:
            continue
        strips.append(to_train_width(line_strip(found).pixels))
        target = np.zeros(TARGET_LENGTH, dtype=np.int32)
        target[:len(text)] = text
        targets.append(target)
    return (np.round(np.stack(strips) * 255).astype(np.uint8) if strips
            else np.zeros((0, STRIP_HEIGHT, TRAIN_WIDTH), np.uint8)), \
        np.stack(targets) if targets else np.zeros((0, TARGET_LENGTH), np.int32)


def _line_glyphs(digit_images, labels, marks, rng) -> tuple[np.ndarray, list[int]]:
    """The glyphs of one training line and its digits: MNIST digits; or, in NON_DIGIT_LINES of lines, one to
    three marks that are not digits (read as nothing); or, in MARKED_LINES, digits with a mark among them."""
    draw = rng.random()
    if draw < NON_DIGIT_LINES:
        return marks[rng.integers(0, len(marks), int(rng.integers(1, 4)))], []
    picks = rng.integers(0, len(digit_images), int(rng.integers(TRAIN_LENGTHS[0], TRAIN_LENGTHS[1] + 1)))
    images, text = digit_images[picks], [int(labels[pick]) for pick in picks]
    if draw < NON_DIGIT_LINES + MARKED_LINES and len(picks) < TRAIN_LENGTHS[1]:
        where = int(rng.integers(0, len(picks) + 1))
        images = np.insert(images, where, marks[int(rng.integers(0, len(marks)))], axis=0)
    return images, text


def _with_separators(images: list, digits: list[int], rng) -> tuple[list, list[int]]:
    """The glyphs of a line and its target classes: in SEPARATOR_LINES of lines of two digits or more (and no
    mark among them), separators written between some neighbours; a space has no class of its own."""
    classes = [digit + 1 for digit in digits]
    if len(digits) < 2 or len(images) != len(digits) or rng.random() >= SEPARATOR_LINES:
        return images, classes
    count = int(rng.integers(1, min(MOST_SEPARATORS, len(digits) - 1) + 1))
    gaps = set(int(gap) for gap in rng.choice(np.arange(1, len(digits)), size=count, replace=False))
    glyphs, target = [], []
    for index, (image, digit_class) in enumerate(zip(images, classes, strict=True)):
        if index in gaps:
            mark = SPACE if rng.random() < SPACE_SHARE else SEPARATORS[int(rng.integers(0, len(SEPARATORS)))]
            glyphs.append(mark)
            if mark != SPACE:
                target.append(DIGIT_CLASSES + SEPARATORS.index(mark))
        glyphs.append(image)
        target.append(digit_class)
    return glyphs, target


def vary_digit_style(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A (28, 28) uint8 glyph drawn with a thicker or thinner pen (a 2x2 grey dilation or erosion), and
    slanted by up to STYLE_SLANT_DEGREES, each with STYLE_CHANCE; what is changed is drawn anew per call."""
    from scipy import ndimage

    glyph = image.astype(np.float32)
    if rng.random() < STYLE_CHANCE:
        thicker = rng.random() < 0.5
        changed = (ndimage.grey_dilation if thicker else ndimage.grey_erosion)(glyph, size=(2, 2))
        if changed.max() >= 0.5 * glyph.max():  # a thin stroke eroded away: keep the original
            glyph = changed
    if rng.random() < STYLE_CHANCE:
        shear = np.tan(np.radians(rng.uniform(-STYLE_SLANT_DEGREES, STYLE_SLANT_DEGREES)))
        centre = (image.shape[0] - 1) / 2
        # Output (row, column) samples input (row, column + shear * (row - centre)): rows shift sideways.
        glyph = ndimage.affine_transform(glyph, np.array([[1.0, 0.0], [shear, 1.0]]),
                                         offset=(0.0, -shear * centre), order=1)
    return np.clip(np.round(glyph), 0, 255).astype(np.uint8)


def to_train_width(pixels: np.ndarray) -> np.ndarray:
    """A strip cut or padded with blank columns to TRAIN_WIDTH; squeezed to fit when its ink is wider."""
    inked = np.flatnonzero(pixels.any(axis=0))
    used = int(inked[-1]) + 1 if len(inked) else 0
    if used <= TRAIN_WIDTH:
        return np.pad(pixels[:, :TRAIN_WIDTH], ((0, 0), (0, max(0, TRAIN_WIDTH - pixels.shape[1]))))
    from PIL import Image

    squeezed = Image.fromarray(pixels[:, :used], mode="F").resize((TRAIN_WIDTH - 2, STRIP_HEIGHT),
                                                                  Image.Resampling.BILINEAR)
    return np.pad(np.asarray(squeezed), ((0, 0), (0, 2)))


# ----------------------------------------------------------------------------- build


def build_line_model(seed: int = 0, size: LineModelSize | None = None):
    """A 2x2 convolution with stride 2 (the strip cut into patches), then two 3x3 convolutions, each with
    batch normalisation, pooled to 3 x width/4 (CONV_FILTERS); a convolution over the
    3 rows (a dense layer per step of 4 columns); two convolutions 5 steps wide along the line (each step then sees about two
    digits); CTC logits per step: (batch, width / 4, CLASSES). A Sequential of Conv2D, BatchNormalization,
    ReLU, MaxPooling2D, Dropout and Reshape only, so that `lowering.py` runs it fast in a scanned epoch.

    Batch normalisation (on synthetic lines of training digits, scored on lines of test digits, the
    same 30,000 lines and 10 epochs): CTC's loss leaves its plateau in the first epoch instead of the
    fourth, and 84.5% of lines are read exactly instead of 77.3%."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)
    size = size or LineModelSize(CONV_FILTERS, LINE_FILTERS, 2, EPOCHS, vary_style=False)  # the module's, as set now
    first, *others = size.conv_filters
    stack = [keras.Input((STRIP_HEIGHT, None, 1), name="strip"),
             layers.Conv2D(first, 2, strides=2, use_bias=False), layers.BatchNormalization(), layers.ReLU()]
    for filters, pool in zip(others, ((2, 2), (2, 1)), strict=True):
        stack += [layers.Conv2D(filters, 3, padding="same", use_bias=False), layers.BatchNormalization(),
                  layers.ReLU(), layers.MaxPooling2D(pool)]
    stack += [layers.Conv2D(size.line_filters, (STRIP_HEIGHT // 8, 1), activation="relu"),  # (1, width / 4, filters)
              layers.Dropout(DROPOUT)]
    stack += [layers.Conv2D(size.line_filters, (1, 5), padding="same", activation="relu")
              for _ in range(size.line_convs)]
    stack += [layers.Conv2D(CLASSES, 1),
              layers.Reshape((-1, CLASSES), name="ctc_logits")]
    return keras.Sequential(stack, name="line_model")


# ----------------------------------------------------------------------------- train


def fit_line_model(model, strips: np.ndarray, targets: np.ndarray, epochs: int, batch_size: int,
                   learning_rate: float, seed: int, verbose: int = 0) -> list[float]:
    """Train with CTC loss and Adam (warm-up, then cosine decay), each epoch one compiled scan over the
    shuffled batches, the convolutions lowered (`lowering.py`); returns each epoch's mean loss."""
    import jax
    import jax.numpy as jnp
    import keras

    if len(strips) != len(targets) or len(strips) < batch_size:
        raise ValueError(f"need as many strips as targets, at least one batch ({batch_size}): got {len(strips)} "
                         f"and {len(targets)}")
    batches = len(strips) // batch_size
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate / 10, epochs * batches, alpha=0.01,
                                                      warmup_target=learning_rate, warmup_steps=max(1, batches // 2))
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=keras.losses.CTC())
    model.optimizer.build(model.trainable_variables)
    forward = lowering.forward_function(model)
    ctc = model.loss

    def step(state, batch):
        trainable, non_trainable, optimizer_state = state
        batch_strips, batch_targets = batch

        def loss_function(trainable):
            inputs = batch_strips.astype(jnp.float32)[..., None] / 255.0
            logits, updated = forward(trainable, non_trainable, inputs, training=True)
            return ctc(batch_targets, logits), updated

        (loss, non_trainable), gradients = jax.value_and_grad(loss_function, has_aux=True)(trainable)
        trainable, optimizer_state = model.optimizer.stateless_apply(optimizer_state, gradients, trainable)
        return (trainable, non_trainable, optimizer_state), loss

    @jax.jit
    def run_chunk(state, chunk_strips, chunk_targets):  # (CHUNK, batch, rows, width), (CHUNK, batch, length)
        return jax.lax.scan(step, state, (chunk_strips, chunk_targets))

    widths = used_widths(strips)
    variables = (model.trainable_variables, model.non_trainable_variables, model.optimizer.variables)
    state = tuple([variable.value for variable in group] for group in variables)
    generator = np.random.default_rng(seed)
    losses = []
    for index in range(epochs):
        started = time.perf_counter()
        batch_losses = []
        for width, members in _shuffled_chunks(widths, batch_size, generator):
            state, chunk_losses = run_chunk(state, jnp.asarray(strips[members][..., :width]),
                                            jnp.asarray(targets[members]))
            batch_losses.append(chunk_losses)
        if not batch_losses:
            raise ValueError(f"{len(strips)} strips fill no chunk of {CHUNK} batches of {batch_size} of one width; "
                             "give more lines or a smaller batch size")
        losses.append(float(jnp.mean(jnp.concatenate(batch_losses))))
        if verbose:
            print(f"line model epoch {index + 1}/{epochs}: CTC loss {losses[-1]:.4f} "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)
    for group, values in zip(variables, state, strict=True):
        for variable, value in zip(group, values, strict=True):
            variable.assign(value)
    return losses


def train_and_save(digit_images: np.ndarray, labels: np.ndarray, line_count: int, seed: int, run_path: Path,
                   verbose: int = 0, size: str = "standard") -> float:
    """Synthesise `line_count` lines of the digits, train a line model of the named size (SIZES) on them
    and save it in the run folder as LINE_MODEL_FILE; returns the seconds it all took."""
    if size not in SIZES:
        raise ValueError(f"unknown line model size {size!r}; choose one of: {', '.join(SIZES)}")
    settings = SIZES[size]
    started = time.perf_counter()
    strips, targets = synthesize_strips(digit_images, labels, line_count, seed, workers=available_cores(),
                                        vary_style=settings.vary_style)
    if verbose:
        print(f"line model: {len(strips):,} training lines made ({time.perf_counter() - started:.0f} s)", flush=True)
    model = build_line_model(seed, settings)
    # Few lines (a quick test): smaller batches, so that each width still fills whole chunks.
    batch_size = max(1, min(BATCH_SIZE, len(strips) // (8 * CHUNK)))
    fit_line_model(model, strips, targets, settings.epochs, batch_size, LEARNING_RATE, seed, verbose=verbose)
    with storage.atomic_path(Path(run_path) / LINE_MODEL_FILE) as partial:  # never half a line model under its name
        model.save(partial)
    return time.perf_counter() - started


def used_widths(strips: np.ndarray) -> np.ndarray:
    """Each strip's width rounded up to WIDTH_BUCKET columns: the columns up to its last ink."""
    inked = strips.any(axis=1)  # (n, width)
    last = inked.shape[1] - np.argmax(inked[:, ::-1], axis=1)
    return np.clip(WIDTH_BUCKET * np.ceil(last / WIDTH_BUCKET), WIDTH_BUCKET, strips.shape[2]).astype(int)


def _shuffled_chunks(widths: np.ndarray, batch_size: int, generator: np.random.Generator):
    """(width, (CHUNK, batch_size) strip indices) for one epoch: strips of one width bucket batched together
    (short lines are not padded to the longest), the chunks of all buckets in random order. Each bucket's
    strips that fill no whole chunk wait for another epoch's shuffle."""
    chunks = []
    for width in np.unique(widths):
        members = generator.permutation(np.flatnonzero(widths == width))
        whole = len(members) // (CHUNK * batch_size)
        chunks += [(int(width), members[start:start + CHUNK * batch_size].reshape(CHUNK, batch_size))
                   for start in range(0, whole * CHUNK * batch_size, CHUNK * batch_size)]
    return [chunks[index] for index in generator.permutation(len(chunks))]
