"""Offline dataset loaders, one module per dataset; each knows which package ships its asset."""

from .glove import load_glove
from .gutenberg import available_books, book_text, gutenberg_sentences, load_gutenberg
from .nltk_data import nltk_stopwords, setup_nltk
from .rotten_tomatoes import LABEL_NAMES, load_rotten_tomatoes
from .splits import SPLITS, stratified_split

__all__ = [
    "LABEL_NAMES",
    "SPLITS",
    "available_books",
    "book_text",
    "gutenberg_sentences",
    "load_glove",
    "load_gutenberg",
    "load_rotten_tomatoes",
    "nltk_stopwords",
    "setup_nltk",
    "stratified_split",
]
