"""Whether a run's figures can be trusted (a gate refuses to pass an invalid run)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Validity"]


@dataclass(frozen=True)
class Validity:
    """`valid` plus the human-readable reasons it is not (empty when valid)."""

    valid: bool
    reasons: tuple[str, ...] = ()

    @classmethod
    def ok(cls) -> Validity:
        return cls(True, ())

    @classmethod
    def invalid(cls, *reasons: str) -> Validity:
        return cls(False, tuple(reasons))

    def combine(self, other: Validity) -> Validity:
        """Both must be valid; reasons are concatenated without duplicates."""
        reasons = tuple(dict.fromkeys(self.reasons + other.reasons))
        return Validity(self.valid and other.valid, reasons)

    def to_json(self) -> dict[str, Any]:
        return {"valid": self.valid, "reasons": list(self.reasons)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Validity:
        """Raises ValueError when `data` is not {"valid": bool, "reasons": [str, ...]}."""
        valid = data.get("valid")
        reasons = data.get("reasons", [])
        if not isinstance(valid, bool):
            raise ValueError("validity.valid must be true or false")
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise ValueError("validity.reasons must be a list of strings")
        return cls(valid, tuple(reasons))
