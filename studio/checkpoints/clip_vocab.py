"""OpenAI CLIP's BPE vocabulary (49408 tokens), derived offline from the copy open_clip ships.

SD 1.x's `tokenizer` and SDXL's `tokenizer_2` both use this vocabulary; the Hub folders carry it
as vocab.json + merges.txt. We rebuild those two files from open_clip's
`bpe_simple_vocab_16e6.txt.gz` exactly as CLIP's SimpleTokenizer builds its encoder, so shipped
config folders need no download and no 2 MB vocabulary in the repository.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
from pathlib import Path

BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
VOCAB_SIZE = 49408
# SimpleTokenizer keeps merges[1 : 49152 - 256 - 2 + 1]: line 0 is the version header.
MERGE_COUNT = 49152 - 256 - 2

# SD 1.5's tokenizer/tokenizer_config.json and special_tokens_map.json (openai/clip-vit-large-patch14).
_SPECIAL = {"lstrip": False, "normalized": True, "rstrip": False, "single_word": False}
SD15_TOKENIZER_CONFIG = {
    "add_prefix_space": False,
    "bos_token": {"__type": "AddedToken", "content": BOS, **_SPECIAL},
    "do_lower_case": True,
    "eos_token": {"__type": "AddedToken", "content": EOS, **_SPECIAL},
    "errors": "replace",
    "model_max_length": 77,
    "name_or_path": "openai/clip-vit-large-patch14",
    "pad_token": EOS,
    "special_tokens_map_file": "./special_tokens_map.json",
    "tokenizer_class": "CLIPTokenizer",
    "unk_token": {"__type": "AddedToken", "content": EOS, **_SPECIAL},
}
SD15_SPECIAL_TOKENS_MAP = {
    "bos_token": {"content": BOS, **_SPECIAL},
    "eos_token": {"content": EOS, **_SPECIAL},
    "pad_token": EOS,
    "unk_token": {"content": EOS, **_SPECIAL},
}


def bpe_path() -> Path:
    """open_clip's BPE file, located without importing open_clip (its import takes seconds)."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("open_clip is not installed; it provides CLIP's BPE vocabulary")
    path = Path(next(iter(spec.submodule_search_locations))) / BPE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the open_clip install")
    return path


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable unicode map (order matters: it sets the ids)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def read_merges(path: Path | None = None) -> list[tuple[str, str]]:
    with gzip.open(path or bpe_path()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    pairs = [line.split() for line in lines[1 : MERGE_COUNT + 1]]
    return [(first, second) for first, second in pairs]


def build_vocab(merges: list[tuple[str, str]]) -> dict[str, int]:
    """SimpleTokenizer's encoder: bytes, bytes + </w>, one token per merge, then the specials."""
    byte_chars = list(bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m) for m in merges] + [BOS, EOS]
    vocab = {token: i for i, token in enumerate(tokens)}
    if len(vocab) != VOCAB_SIZE:
        raise ValueError(f"derived CLIP vocabulary has {len(vocab)} tokens, expected {VOCAB_SIZE}")
    return vocab


def write_vocab(tokenizer_dir: Path) -> None:
    """Write vocab.json and merges.txt (and SD 1.5's tokenizer configs where none exist)."""
    tokenizer_dir.mkdir(parents=True, exist_ok=True)
    merges = read_merges()
    vocab = build_vocab(merges)
    _write_atomic(tokenizer_dir / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    _write_atomic(tokenizer_dir / "merges.txt", "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    # An existing config wins (SDXL's tokenizer_2 pads with "!"); the pair is written together
    # because special_tokens_map.json would override the config's special tokens.
    if not (tokenizer_dir / "tokenizer_config.json").is_file():
        _write_atomic(tokenizer_dir / "tokenizer_config.json", json.dumps(SD15_TOKENIZER_CONFIG, indent=2))
        _write_atomic(tokenizer_dir / "special_tokens_map.json", json.dumps(SD15_SPECIAL_TOKENS_MAP, indent=2))


def _write_atomic(path: Path, text: str) -> None:
    # Two processes may derive the same cache folder at once; never expose a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
