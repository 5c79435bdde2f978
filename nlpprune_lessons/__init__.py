"""nlpprune_lessons: the helper package of the nlpprune-lessons course.

Notebooks stay short and import from here; every dataset, model, training loop, pruning method
and measurement the course uses lives in one module with one job.
"""

from __future__ import annotations

__version__ = "0.1.0"
