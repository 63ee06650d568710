"""Draw the labelled grid: column labels on top (X), row labels on the left (Y), one grid per Z
value side by side under its Z label. PIL only, with its default font."""
from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw, ImageFont

PAD = 4
BACKGROUND, INK = "white", "black"


def font_for(cell_height: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=max(12, cell_height // 16))


def wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Greedy word wrap to `width` pixels; a word longer than the width gets a line of its own."""
    lines: list[str] = []
    for word in text.split():
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] += f" {word}"
        else:
            lines.append(word)
    return lines or [""]


def line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    left, top, right, bottom = font.getbbox("Ag")
    return bottom + 2


def draw_grid(rows: Sequence[Sequence[Image.Image]], column_labels: Sequence[str] = (),
              row_labels: Sequence[str] = ()) -> Image.Image:
    """`rows[r][c]` are the cells, all of one size; labels are left out when not given."""
    width, height = rows[0][0].size
    font = font_for(height)
    step = line_height(font)
    columns = [wrap(text, font, width - 2 * PAD) for text in column_labels]
    label_width = min(2 * width, max((int(font.getlength(text)) for text in row_labels), default=0))
    row_lines = [wrap(text, font, label_width) for text in row_labels]
    top = max(len(lines) for lines in columns) * step + 2 * PAD if columns else 0
    left = label_width + 2 * PAD if row_labels else 0
    grid = Image.new("RGB", (left + width * len(rows[0]), top + height * len(rows)), BACKGROUND)
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            grid.paste(cell.convert("RGB"), (left + c * width, top + r * height))
    draw = ImageDraw.Draw(grid)
    for c, lines in enumerate(columns):
        y = top - PAD - len(lines) * step
        for i, line in enumerate(lines):
            x = left + c * width + (width - int(font.getlength(line))) // 2
            draw.text((x, y + i * step), line, fill=INK, font=font)
    for r, lines in enumerate(row_lines):
        y = top + r * height + (height - len(lines) * step) // 2
        for i, line in enumerate(lines):
            draw.text((left - PAD - int(font.getlength(line)), y + i * step), line, fill=INK, font=font)
    return grid


def side_by_side(grids: Sequence[Image.Image], titles: Sequence[str] = ()) -> Image.Image:
    """One image of several grids (one per Z value), each under its title."""
    if len(grids) == 1 and not titles:
        return grids[0]
    font = font_for(grids[0].height // 2)
    title_height = line_height(font) + 2 * PAD if titles else 0
    gap = 4 * PAD
    out = Image.new("RGB", (sum(g.width for g in grids) + gap * (len(grids) - 1),
                            title_height + max(g.height for g in grids)), BACKGROUND)
    draw, x = ImageDraw.Draw(out), 0
    for i, grid in enumerate(grids):
        out.paste(grid, (x, title_height))
        if titles:
            draw.text((x + (grid.width - int(font.getlength(titles[i]))) // 2, PAD), titles[i], fill=INK, font=font)
        x += grid.width + gap
    return out
