"""Checks for the notebooks' exercises, one module per lesson (``lesson03`` holds lesson 03's).

How a check reports (passed / not done yet / a wrong answer with a hint) is in
:mod:`nlpprune_lessons.lessons.exercises.protocol`. The repository keeps the solved notebooks;
``nlpprune student`` writes the learner's copies with the fenced solutions replaced by a stub.
"""

from __future__ import annotations

from nlpprune_lessons.lessons.exercises.protocol import NOT_DONE, PASSED, ExerciseError
from nlpprune_lessons.lessons.exercises.lesson00 import *  # noqa: F403
from nlpprune_lessons.lessons.exercises.lesson01 import *  # noqa: F403
from nlpprune_lessons.lessons.exercises.lesson02 import *  # noqa: F403
from nlpprune_lessons.lessons.exercises.lesson03 import *  # noqa: F403
from nlpprune_lessons.lessons.exercises.lesson04 import *  # noqa: F403
from nlpprune_lessons.lessons.exercises.lesson05 import *  # noqa: F403
from nlpprune_lessons.lessons.exercises.lesson06 import *  # noqa: F403
from nlpprune_lessons.lessons.exercises.lesson07 import *  # noqa: F403
from nlpprune_lessons.lessons.exercises.lesson08 import *  # noqa: F403
from nlpprune_lessons.lessons.exercises.lesson09 import *  # noqa: F403

from nlpprune_lessons.lessons.exercises import lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08, lesson09  # noqa: E402

__all__ = ["NOT_DONE", "PASSED", "ExerciseError"] + [name for module in (lesson00, lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08, lesson09) for name in module.__all__]
