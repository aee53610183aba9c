"""bmes_tagger: character-level BiLSTM taggers for Chinese word segmentation and NER."""

__version__ = "0.1.0"
