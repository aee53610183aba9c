"""Self-contained checkpoints: written atomically, loaded without executing code.

A checkpoint is a plain dict of tensors and Python builtins (loadable with
``torch.load(..., weights_only=True)``, which refuses any pickled object that would run code):

- ``format``: ``"bmes_tagger"``; ``format_version``: int (refused if newer than we read)
- ``config``: the resolved config as a nested dict
- ``chars``: the character vocabulary (id order); ``tags``: the tag list (id order)
- ``bigrams``: the bigram vocabulary (id order; empty without bigram features)
- ``train_words``: sorted training word types (CWS OOV metrics); empty for NER
- ``model``: the model's state dict
- ``scores``: best dev scores and the epoch/step they were reached at
- ``training`` (``last.pt`` only): optimizer, RNG and loop state for ``--resume``

Version 2 stores ``chars``, ``bigrams`` and ``train_words`` each as one ``"\n"``-joined string
(version 1: lists): unpickling a list of 100,000+ strings under ``weights_only=True`` took about
1 s for the PKU model, one string 50 ms. :func:`load_checkpoint` returns lists for both.
"""

from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .atomic import atomic_write
from .errors import CheckpointError

FORMAT = "bmes_tagger"
FORMAT_VERSION = 2
# token lists stored "\n"-joined from version 2 (no token contains a newline: tokens come from
# lines, and bigram keys join two tokens with \x1f)
JOINED_KEYS = ("chars", "bigrams", "train_words")
REQUIRED_KEYS = ("config", "chars", "tags", "model")


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file, fsync, rename).

    No partial file ever exists under the final name, even if the process is killed mid-write.
    """
    path = Path(path)
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION,
               "bmes_tagger_version": __version__, **payload}
    for key in JOINED_KEYS:
        if key in payload:
            tokens = list(payload[key])
            if any("\n" in t for t in tokens):
                raise ValueError(f"checkpoint {key}: a token contains a newline")
            payload[key] = "\n".join(tokens)
    with atomic_write(path, binary=True) as f:
        torch.save(payload, f)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and check a checkpoint written by :func:`save_checkpoint`.

    Raises:
        CheckpointError: missing file, not a checkpoint (truncated, random bytes, another
            program's file), unsafe content (objects that would execute code), or a format
            version newer than this program reads.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.is_dir():
        hint = " (did you mean best.pt inside it?)" if (path / "best.pt").exists() else ""
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file{hint}")
    try:
        with warnings.catch_warnings():
            # A plain pickle (not torch.save's zip) triggers a multi-line warning on stderr
            # before the refusal below; the refusal alone is the message.
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        unsafe = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line]
        if unsafe:
            raise CheckpointError(
                f"{path}: refused to load: it references Python objects that are not plain "
                f"tensors or values, and loading them could run code ({unsafe[0][:160]})"
            ) from None
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupt, or not written by "
                              "torch.save)") from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, ValueError, OSError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated or corrupt?): "
                              f"{reason[:200]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a bmes_tagger checkpoint")
    version = payload.get("format_version")
    if not isinstance(version, int):
        raise CheckpointError(f"{path}: checkpoint has no valid format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version} is newer than this bmes_tagger "
            f"({__version__}) reads (version {FORMAT_VERSION}); upgrade bmes_tagger"
        )
    missing = [k for k in REQUIRED_KEYS if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: checkpoint lacks {', '.join(missing)}")
    for key in JOINED_KEYS:
        if isinstance(payload.get(key), str):
            payload[key] = payload[key].split("\n") if payload[key] else []
    return payload

