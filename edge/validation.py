"""One way to turn a pydantic ValidationError into a user's message: ``where: field: problem``."""

from __future__ import annotations

from pydantic import ValidationError


def first_problem(err: ValidationError, *, whole: str) -> str:
    """``field.path: message`` of the first error; ``whole`` names the object when no field does."""
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"]) or whole
    return f"{loc}: {first['msg']}"
