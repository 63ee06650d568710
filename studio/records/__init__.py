"""Records: what a generated image carries and where it is kept.

A1111 infotext, the studio recipe (a PNG's `studio` chunk) and reading both back (PNG Info,
Reproduce), atomic PNG storage under outputs/, and the History index over it.
"""
