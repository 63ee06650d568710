"""The prompt matrix grid (A1111's draw_prompt_matrix): cells in rows and columns, the parts of
the column combinations over each column and those of the row combinations left of each row;
a part in use is drawn in black, a part left out in grey and struck through. PIL only."""
from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

PAD = 4
ACTIVE, INACTIVE, BACKGROUND = (0, 0, 0), (153, 153, 153), "white"


def draw_matrix(cells: Sequence[Image.Image], columns: int, column_parts: Sequence[str],
                row_parts: Sequence[str], margin: int = 0) -> Image.Image:
    """`cells[r * columns + c]`; the bits of `c` say which `column_parts` are in use, those of `r`
    which `row_parts` are."""
    width, height = cells[0].size
    rows = -(-len(cells) // columns)
    font = ImageFont.load_default(size=max(12, height // 16))
    step = font.getbbox("Ag")[3] + 2
    top = len(column_parts) * step + 2 * PAD if column_parts else 0
    left = (max(int(font.getlength(part)) for part in row_parts) + 2 * PAD) if row_parts else 0
    left = min(left, 2 * width)
    grid = Image.new("RGB", (left + columns * width + (columns - 1) * margin,
                             top + rows * height + (rows - 1) * margin), BACKGROUND)
    for index, cell in enumerate(cells):
        r, c = divmod(index, columns)
        grid.paste(cell.convert("RGB"), (left + c * (width + margin), top + r * (height + margin)))
    draw = ImageDraw.Draw(grid)
    for c in range(columns):
        for i, part in enumerate(column_parts):
            x = left + c * (width + margin) + (width - int(font.getlength(part))) // 2
            _label(draw, font, (x, PAD + i * step), part, bool(c & (1 << i)), step)
    for r in range(rows):
        y0 = top + r * (height + margin) + (height - len(row_parts) * step) // 2
        for i, part in enumerate(row_parts):
            x = left - PAD - int(font.getlength(part))
            _label(draw, font, (x, y0 + i * step), part, bool(r & (1 << i)), step)
    return grid


def _label(draw: ImageDraw.ImageDraw, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, at: tuple[int, int],
           text: str, active: bool, step: int) -> None:
    draw.text(at, text, fill=ACTIVE if active else INACTIVE, font=font)
    if not active:
        y = at[1] + step // 2
        draw.line((at[0], y, at[0] + int(font.getlength(text)), y), fill=INACTIVE, width=1)
