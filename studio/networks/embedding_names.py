"""Where a prompt names a textual inversion embedding, matched as A1111 does: by whole tokens.

A1111 (EmbeddingDatabase.find_embedding_at_position) tokenizes the prompt and each embedding's
name with CLIP and matches the name's token sequence in the prompt's tokens. CLIP lower-cases
text and splits it into letter runs, single digits and runs of other characters (the pieces BPE
never joins), so matching those pieces, case-insensitively, matches where A1111 matches: `a` is
the word "a" (also "A"), never the letter inside "cat". A matched name is replaced by the
embedding's own placeholder tokens (`tiemb<hash> tiemb<hash>_1 ...`), which cannot occur in
ordinary text: the tokenizer learns those, never a word of the vocabulary.
Names with no letter (`5`, `--`) are not matched: they would match inside attention weights.
"""
from __future__ import annotations

import hashlib
import re
from typing import Iterable, Mapping

_PIECE = re.compile(r"[^\W\d_]+|\d|(?:[^\s\w]|_)+")  # CLIP's pre-tokenizer: letters | a digit | the rest


def pieces(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0).lower()) for m in _PIECE.finditer(text)]


def placeholder(name: str) -> str:
    return "tiemb" + hashlib.sha1(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]


def expansion(name: str, vectors: int) -> str:
    """The placeholder tokens of an embedding of `vectors` vectors (diffusers names them t, t_1, ...)."""
    token = placeholder(name)
    return " ".join([token] + [f"{token}_{n}" for n in range(1, vectors)])


class NameMatcher:
    """The embeddings' names by their first piece (A1111's ids_lookup): a prompt is scanned once."""

    def __init__(self, names: Iterable[str]) -> None:
        self.by_first: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for name in names:
            seq = tuple(piece for _, _, piece in pieces(name))
            if seq and any(ch.isalpha() for ch in name):
                self.by_first.setdefault(seq[0], []).append((seq, name))
        for candidates in self.by_first.values():
            candidates.sort(key=lambda item: -len(item[0]))  # the longest name first, as A1111

    def matches(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, name) of each match, left to right, not overlapping."""
        found: list[tuple[int, int, str]] = []
        split = pieces(text)
        i = 0
        while i < len(split):
            for seq, name in self.by_first.get(split[i][2], ()):
                if tuple(piece for _, _, piece in split[i:i + len(seq)]) == seq:
                    found.append((split[i][0], split[i + len(seq) - 1][1], name))
                    i += len(seq)
                    break
            else:
                i += 1
        return found

    def mentioned(self, texts: Iterable[str]) -> set[str]:
        return {name for text in texts for _, _, name in self.matches(text)}

    def rewrite(self, text: str, expansions: Mapping[str, str]) -> str:
        """The text with each matched name that has an expansion replaced by it."""
        out, last = [], 0
        for start, end, name in self.matches(text):
            if name in expansions:
                out += [text[last:start], f" {expansions[name]} "]
                last = end
        return "".join(out) + text[last:] if out else text
