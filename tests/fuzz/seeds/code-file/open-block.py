"""A small module to complete."""

import math


def area(radius: float) -> float:
    """The area of a circle."""
    return math.pi * radius ** 2


class Shape:
    def __init__(self, sides: int) -> None:
        self.sides = sides

    def describe(self):
        if self.sides > 2:
            return f"{self.sides} sides"


def unfinished(values):
    total = (1 +
