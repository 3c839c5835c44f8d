"""Sizes padded to a power of two, so that one compiled program serves many requested sizes."""
from __future__ import annotations

__all__ = ["power_of_two_at_least"]


def power_of_two_at_least(n: int, minimum: int = 1) -> int:
    """The smallest power of two >= ``n``, and at least ``minimum``: ``(int) -> int``.

    Used where a jitted function is compiled per size (``sample(n)``, an EM history of length
    ``max_iter``): the work is done for the padded size and the first ``n`` results kept.
    """
    return max(int(minimum), 1 << (int(n) - 1).bit_length())
