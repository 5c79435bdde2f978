"""Measurement: latency on ``torch.utils.benchmark``-style repeated timing (:mod:`.latency`), the
size of a model in parameters and on disk (:mod:`.size`), and freeing memory between runs
(:mod:`.memory`)."""
