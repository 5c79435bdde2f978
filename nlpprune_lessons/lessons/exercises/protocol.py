"""How an exercise is checked and what the learner sees.

An exercise is a function the learner writes inside a ``# YOUR CODE HERE`` ... ``# END YOUR CODE``
fence, in a code cell tagged ``solution``, followed by a ``check_*`` call. The student copy replaces the
fenced lines by ``raise NotImplementedError(...)``; a check decorated with :func:`exercise` then prints a
one-line "not done yet" (no traceback, no answer) and returns :data:`NOT_DONE`, so Run All goes on.
A wrong answer raises :class:`ExerciseError`, whose message names the first mismatch (shape, dtype,
entry, expected vs got) and gives a hint without the solution; inside IPython only that message is
shown (``_render_traceback_``), not a traceback through this package. A right answer prints one line and returns :data:`PASSED`.
The check, and the learner's function inside it, run with torch's global CPU random state saved and
restored: running a check cell or not changes nothing a later cell draws.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable

import torch

PASSED, NOT_DONE = "passed", "not done"
PASS_MARK, NOT_DONE_MARK, FAIL_MARK = "\u2714", "\u25fb", "\u2718"


class ExerciseError(AssertionError):
    """The learner's answer is not right yet; the message says what differs and gives a hint."""

    def _render_traceback_(self) -> list[str]:
        """IPython shows this instead of a traceback: the message, in red, on its own (the hint is the
        point; the frames would only lead into this package)."""
        return [f"\x1b[31m{FAIL_MARK} {self}\x1b[0m"]


def exercise(number: str, title: str) -> Callable:
    """Decorate a check: ``number`` like ``"03.2"``, ``title`` a few words naming what the learner writes.

    The decorated check returns the success message (a string) or raises :class:`ExerciseError`; the
    wrapper prints the result line, turns a ``NotImplementedError`` raised by the learner's stub into
    "not done yet", and leaves torch's global CPU random state as it found it."""

    def decorate(check: Callable[..., str]) -> Callable[..., str]:
        @functools.wraps(check)
        def run(*args, **kwargs) -> str:
            try:
                with torch.random.fork_rng(devices=[]):  # new layers and DataLoaders draw from it
                    message = check(*args, **kwargs)
            except NotImplementedError:
                print(f"{NOT_DONE_MARK} Exercise {number} ({title}): not done yet. Write your code between "
                      "'# YOUR CODE HERE' and '# END YOUR CODE' in the cell above, run it, then run this "
                      "check again.")
                return NOT_DONE
            except ExerciseError as err:
                raise ExerciseError(f"Exercise {number} ({title}), not yet: {err}") from None
            print(f"{PASS_MARK} Exercise {number} ({title}) passed: {message}")
            return PASSED

        run.exercise_number, run.exercise_title = number, title
        return run

    return decorate


def require(condition: bool, hint: str) -> None:
    """Raise :class:`ExerciseError` with ``hint`` unless ``condition``."""
    if not condition:
        raise ExerciseError(hint)


def require_callable(fn: object, name: str) -> None:
    """The learner passes a function, not its result."""
    if not callable(fn):
        raise TypeError(f"pass your function {name} itself (not its result), got {type(fn).__name__}")


def _entry(index: tuple[int, ...]) -> str:
    return "[" + ", ".join(map(str, index)) + "]"


def compare_tensors(got: object, expected: torch.Tensor, what: str, hint: str, *, atol: float = 1e-5,
                    rtol: float = 1e-4, check_dtype: bool = False) -> None:
    """Require ``got`` to be a tensor equal (within ``atol``/``rtol``) to ``expected``; the message names
    the first mismatch: type, shape, dtype, or the first differing entry with expected and got values."""
    require(torch.is_tensor(got), f"{what}: return a torch.Tensor, got {type(got).__name__}. {hint}")
    require(tuple(got.shape) == tuple(expected.shape),
            f"{what}: expected shape {tuple(expected.shape)}, got {tuple(got.shape)}. {hint}")
    if check_dtype:
        require(got.dtype == expected.dtype, f"{what}: expected dtype {expected.dtype}, got {got.dtype}. {hint}")
    got_cmp, exp_cmp = got.detach().double().cpu(), expected.detach().double().cpu()
    close = torch.isclose(got_cmp, exp_cmp, atol=atol, rtol=rtol, equal_nan=False)
    if not bool(close.all()):
        wrong = (~close).nonzero()[0].tolist()
        index = tuple(int(i) for i in wrong)
        count = int((~close).sum())
        require(False, f"{what}: {count} of {expected.numel()} entries differ; the first is "
                       f"{_entry(index)}: expected {exp_cmp[index].item():.6g}, got {got_cmp[index].item():.6g}. {hint}")


def compare_numbers(got: object, expected: float, what: str, hint: str, *, rel: float = 1e-6, abs_tol: float = 1e-9) -> None:
    """Require ``got`` to be a real number (a Python or NumPy scalar, or a one-element tensor) close to
    ``expected``."""
    number = got.item() if torch.is_tensor(got) and got.numel() == 1 else got
    require(isinstance(number, numbers.Real) and not isinstance(number, bool),
            f"{what}: return a number, got {type(got).__name__}. {hint}")
    require(math.isclose(float(number), expected, rel_tol=rel, abs_tol=abs_tol),
            f"{what}: expected {expected:.6g}, got {float(number):.6g}. {hint}")
