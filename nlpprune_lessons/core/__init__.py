"""The library's foundation: run mode (FAST/FULL), seeding, device and paths (:mod:`.config`),
argument checks (:mod:`.checks`), offline asset locations (:mod:`.assets`), the checkpoint cache
(:mod:`.checkpoints`) and moving batches to a device (:mod:`.batch`). It imports nothing else of
the package."""
