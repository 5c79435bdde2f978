"""Training: the fit loop for classifiers and RNN language models (:mod:`.loop`), learning-rate
schedules, frozen embeddings, the step-based loops of a text generator and its discriminator
(:mod:`.gan`), and a causal LM's fine-tune with pruned zeros kept (:mod:`.causal_lm`)."""
