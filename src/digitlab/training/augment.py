"""Random shifts, rotations and zooms of a batch of images as one affine warp, for the fast loop.

Keras's RandomTranslation, RandomRotation and RandomZoom each resample the whole batch through
`map_coordinates`: three passes that took about 40 ms of a 155 ms training step of the `best` recipe
(batch 128, 2 CPU cores). Drawing the three transforms together and resampling once, with four
gathers and a bilinear blend, takes about 1 ms. The layers stay in the saved model (they do nothing
when predicting); only the fast loop's training pass replaces them by `random_affine`.

What is drawn is what the layers draw: per image, a shift uniform in the translation layer's range
(a fraction of the height and width), an angle uniform in the rotation layer's range, and a zoom
uniform in the zoom layer's range (positive zooms out, as in Keras; one zoom for both axes unless a
width range is given), with bilinear interpolation and what moves into the frame filled with 0. The
random stream differs from Keras's own (one key per batch from the first layer's seed state).
"""

from __future__ import annotations

import dataclasses
import math

# The Keras layers `random_affine` replaces, in any order and any subset.
AUGMENTATION_LAYERS = ("RandomTranslation", "RandomRotation", "RandomZoom")


@dataclasses.dataclass(frozen=True)
class AffineRanges:
    """Uniform ranges the random transform is drawn from, (lower, upper) each; (0, 0) is "not drawn"."""

    # Vertical and horizontal shift, as fractions of the image's height and width.
    shift_rows: tuple[float, float] = (0.0, 0.0)
    shift_columns: tuple[float, float] = (0.0, 0.0)
    # Rotation angle in degrees (positive turns counter-clockwise).
    rotation_degrees: tuple[float, float] = (0.0, 0.0)
    # Zoom: 1 + zoom scales the sampling grid (positive zooms out); columns None: the same zoom as rows.
    zoom_rows: tuple[float, float] = (0.0, 0.0)
    zoom_columns: tuple[float, float] | None = None


def unsupported_reason(layer) -> str:
    """Why `layer` (one of AUGMENTATION_LAYERS) cannot be replaced by `random_affine` ("" when it can)."""
    if getattr(layer, "fill_mode", "constant") != "constant" or getattr(layer, "fill_value", 0.0) != 0.0:
        return f"{layer.name}: only fill_mode='constant' with fill_value 0 is fused"
    if getattr(layer, "interpolation", "bilinear") != "bilinear":
        return f"{layer.name}: only bilinear interpolation is fused"
    if getattr(layer, "data_format", "channels_last") != "channels_last":
        return f"{layer.name}: only channels_last images are fused"
    return ""


def ranges_from_layers(layers) -> AffineRanges:
    """The ranges a run of Keras augmentation layers draws from (see AUGMENTATION_LAYERS)."""
    settings = {}
    for layer in layers:
        name = layer.__class__.__name__
        if name == "RandomTranslation":
            settings["shift_rows"] = (layer.height_lower, layer.height_upper)
            settings["shift_columns"] = (layer.width_lower, layer.width_upper)
        elif name == "RandomRotation":
            settings["rotation_degrees"] = (layer.factor[0] * 360.0, layer.factor[1] * 360.0)
        elif name == "RandomZoom":
            settings["zoom_rows"] = (layer.height_lower, layer.height_upper)
            if layer.width_factor is not None:
                settings["zoom_columns"] = (layer.width_lower, layer.width_upper)
        else:
            raise ValueError(f"{layer.name}: {name} is not an augmentation layer this module fuses")
    return AffineRanges(**settings)


def random_affine(images, key, ranges: AffineRanges):
    """Each image of `images` (batch, rows, columns, channels) shifted, turned and zoomed at random.

    Output pixel (y, x) samples the input at the point that the inverse transform maps it to,
    bilinearly; points outside the image read 0.
    """
    import jax
    import jax.numpy as jnp

    batch, rows, columns, channels = images.shape
    keys = jax.random.split(key, 5)

    def draw(index, bounds):
        return jax.random.uniform(keys[index], (batch, 1, 1), minval=bounds[0], maxval=bounds[1])

    angle = draw(0, ranges.rotation_degrees) * (math.pi / 180.0)
    zoom_rows = 1.0 + draw(1, ranges.zoom_rows)
    zoom_columns = zoom_rows if ranges.zoom_columns is None else 1.0 + draw(2, ranges.zoom_columns)
    shift_rows, shift_columns = draw(3, ranges.shift_rows) * rows, draw(4, ranges.shift_columns) * columns

    # Output coordinates relative to the centre; the source point is centre + R(angle) (zoom * offset - shift).
    centre_row, centre_column = (rows - 1) / 2.0, (columns - 1) / 2.0
    offset_rows, offset_columns = jnp.meshgrid(jnp.arange(rows, dtype=jnp.float32) - centre_row,
                                               jnp.arange(columns, dtype=jnp.float32) - centre_column, indexing="ij")
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    offset_rows, offset_columns = offset_rows - shift_rows, offset_columns - shift_columns
    source_rows = (cos * offset_rows + sin * offset_columns) * zoom_rows + centre_row
    source_columns = (cos * offset_columns - sin * offset_rows) * zoom_columns + centre_column
    return _bilinear_sample(images, source_rows, source_columns)


def _bilinear_sample(images, source_rows, source_columns):
    """images (batch, rows, columns, channels) read at (batch, rows, columns) fractional points; outside is 0."""
    import jax.numpy as jnp

    batch, rows, columns, channels = images.shape
    # One pixel of zeros around the image: every corner of a point within a pixel of the frame is inside it,
    # and points farther out are clipped onto the zero border.
    padded = jnp.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0))).reshape(batch, (rows + 2) * (columns + 2), channels)
    row_floor, column_floor = jnp.floor(source_rows), jnp.floor(source_columns)
    row_fraction, column_fraction = (source_rows - row_floor)[..., None], (source_columns - column_floor)[..., None]
    row_floor, column_floor = row_floor.astype(jnp.int32) + 1, column_floor.astype(jnp.int32) + 1

    def corner(row_step: int, column_step: int):
        row = jnp.clip(row_floor + row_step, 0, rows + 1)
        column = jnp.clip(column_floor + column_step, 0, columns + 1)
        flat = (row * (columns + 2) + column).reshape(batch, rows * columns, 1)
        return jnp.take_along_axis(padded, flat, axis=1).reshape(batch, rows, columns, channels)

    top = corner(0, 0) * (1 - column_fraction) + corner(0, 1) * column_fraction
    bottom = corner(1, 0) * (1 - column_fraction) + corner(1, 1) * column_fraction
    return top * (1 - row_fraction) + bottom * row_fraction
