"""One module per lesson: its data pipeline, settings (FAST and FULL), experiments, reference
numbers and exercise checks. Lessons may import anything in the library; the library never imports
a lesson (an import-linter contract in ``pyproject.toml`` keeps it so)."""
