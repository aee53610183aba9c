"""bmes_tagger: character-level BiLSTM taggers for Chinese word segmentation and NER.

    >>> from bmes_tagger import Tagger
    >>> tagger = Tagger.load("runs/sample-cws/best.pt")  # doctest: +SKIP
    >>> tagger.segment(["我们在北京工作。"])  # doctest: +SKIP
    [['我们', '在', '北京', '工作', '。']]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = ["Tagger", "__version__"]

if TYPE_CHECKING:
    from .predict import Tagger


def __getattr__(name: str) -> Any:
    # Imported lazily so `import bmes_tagger` (and the CLI's --help) stays fast: torch loads
    # only when a model is needed.
    if name == "Tagger":
        from .predict import Tagger

        return Tagger
    raise AttributeError(f"module 'bmes_tagger' has no attribute {name!r}")
