"""Draw grounded entities on their image (PIL), for notebooks, demos and model cards."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from svit_dataset.boxes import to_pixels

# Distinct, readable on photos (Tableau 10).
PALETTE = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f")


def draw_entities(
    image: Image.Image,
    entities: Sequence[tuple[str, tuple[int, int], Sequence[Sequence[float]]]],
    *,
    normalized: bool = False,
    line_width: int | None = None,
) -> Image.Image:
    """A copy of `image` with each entity's boxes outlined and labelled with its phrase.

    `entities` as `SvitLlavaProcessor.post_process_generation` returns them: boxes in pixels of `image`
    (`image_size=image.size`), or normalized to it with `normalized=True`.
    """
    canvas = image.convert("RGB")  # a copy, in a mode every outline colour fits
    draw = ImageDraw.Draw(canvas)
    line_width = line_width or max(1, round(max(canvas.size) / 200))
    for index, (phrase, _span, boxes) in enumerate(entities):
        colour = PALETTE[index % len(PALETTE)]
        for box in boxes:
            x1, y1, x2, y2 = to_pixels(box, *canvas.size) if normalized else box
            draw.rectangle((x1, y1, x2, y2), outline=colour, width=line_width)
            if phrase:
                left, top, right, bottom = draw.textbbox((x1, y1), phrase)
                label_top = max(0.0, y1 - (bottom - top) - 2)
                draw.rectangle(
                    (x1, label_top, x1 + right - left + 4, label_top + bottom - top + 2), fill=colour
                )
                draw.text((x1 + 2, label_top), phrase, fill="white")
    return canvas


__all__ = ["PALETTE", "draw_entities"]
