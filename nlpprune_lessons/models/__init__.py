"""Models of the course: bag-of-words (01), RNNs (02-05), GAN (05), transformers (06-09), a translation encoder-decoder (10)."""

from __future__ import annotations

from nlpprune_lessons.models.bow import BagOfWordsClassifier
from nlpprune_lessons.models.gan import Discriminator
from nlpprune_lessons.models.rnn import RNNClassifier, RNNLanguageModel
from nlpprune_lessons.models.seq2seq import Seq2SeqConfig, Seq2SeqTransformer, greedy_decode
from nlpprune_lessons.models.transformers import encode_for_encoder, encoder_loader, load_encoder_classifier

__all__ = [
    "BagOfWordsClassifier",
    "Discriminator",
    "RNNClassifier",
    "RNNLanguageModel",
    "Seq2SeqConfig",
    "Seq2SeqTransformer",
    "encode_for_encoder",
    "encoder_loader",
    "greedy_decode",
    "load_encoder_classifier",
]
