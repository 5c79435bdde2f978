"""Models of the course: bag-of-words (01), RNNs (02-05), GAN (05), transformers (06-09)."""

from .bow import BagOfWordsClassifier
from .gan import Discriminator
from .rnn import RNNClassifier, RNNLanguageModel
from .transformers import encode_for_encoder, encoder_loader, load_encoder_classifier

__all__ = [
    "BagOfWordsClassifier",
    "Discriminator",
    "RNNClassifier",
    "RNNLanguageModel",
    "encode_for_encoder",
    "encoder_loader",
    "load_encoder_classifier",
]
