"""Offline dataset loaders, one module per dataset; each knows which package ships its asset."""

from __future__ import annotations

from nlpprune_lessons.data.glove import load_glove
from nlpprune_lessons.data.gutenberg import available_books, book_text, gutenberg_sentences, load_gutenberg
from nlpprune_lessons.data.japanese_wordnet import ParallelCorpus, load_japanese_wordnet
from nlpprune_lessons.data.nltk_data import nltk_stopwords, setup_nltk
from nlpprune_lessons.data.rotten_tomatoes import LABEL_NAMES, load_rotten_tomatoes
from nlpprune_lessons.data.splits import SPLITS, stratified_split

__all__ = [
    "LABEL_NAMES",
    "ParallelCorpus",
    "SPLITS",
    "available_books",
    "book_text",
    "gutenberg_sentences",
    "load_glove",
    "load_gutenberg",
    "load_japanese_wordnet",
    "load_rotten_tomatoes",
    "nltk_stopwords",
    "setup_nltk",
    "stratified_split",
]
