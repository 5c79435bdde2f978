"""Text processing: word and subword tokenisers and normalisation (:mod:`.tokenize`), vocabularies
(:mod:`.vocab`), padded and bucketed batches (:mod:`.batching`), token streams for language models
(:mod:`.streams`), fixed-length sentence data for generators (:mod:`.sentences`) and seeded input
perturbations (:mod:`.perturb`)."""
