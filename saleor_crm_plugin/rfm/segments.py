"""The R x F segment grid: the default map, parsing of cell specs, and validation (pure).

A map assigns each of the 25 (R, F) cells to exactly one segment. Operators edit it as
``{segment: ["R5F4-5", ...]}``; it is stored as ``{"r,f": slug}`` so SQL can join on it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from saleor_crm_plugin.rfm.error_codes import RfmErrorCode
from saleor_crm_plugin.rfm.exceptions import RfmError

SCORES = (1, 2, 3, 4, 5)
ALL_CELLS = frozenset((r, f) for r in SCORES for f in SCORES)

# The standard R x F grid (the default), as (slug, name, cell specs).
DEFAULT_SEGMENTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("champions", "Champions", ("R5F4-5",)),
    ("loyal", "Loyal", ("R3-4F4-5",)),
    ("potential_loyalists", "Potential Loyalists", ("R4-5F2-3",)),
    ("new", "New", ("R5F1",)),
    ("promising", "Promising", ("R4F1",)),
    ("need_attention", "Need Attention", ("R3F3",)),
    ("about_to_sleep", "About to Sleep", ("R3F1-2",)),
    ("at_risk", "At Risk", ("R1-2F3-4",)),
    ("cant_lose_them", "Can't Lose Them", ("R1-2F5",)),
    ("hibernating", "Hibernating", ("R1-2F1-2",)),
)

_SPEC = re.compile(r"^R([1-5])(?:-([1-5]))?F([1-5])(?:-([1-5]))?$")
_SLUG = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


@dataclass(frozen=True)
class SegmentMap:
    cells: dict[tuple[int, int], str]  # (r, f) -> slug
    names: dict[str, str]  # slug -> display name, in display order

    def segment_of(self, r: int, f: int) -> str:
        return self.cells[(r, f)]

    def to_json(self) -> tuple[dict[str, str], list[list[str]]]:
        """Names as ``[[slug, name], ...]``: a list keeps the display order (jsonb would
        reorder an object's keys)."""
        cells = {f"{r},{f}": slug for (r, f), slug in sorted(self.cells.items())}
        return cells, [[slug, name] for slug, name in self.names.items()]

    @classmethod
    def from_json(cls, cells: Mapping[str, str], names: object) -> SegmentMap:
        parsed = {}
        for key, slug in cells.items():
            r, f = key.split(",")
            parsed[(int(r), int(f))] = slug
        return cls(cells=parsed, names=names_from_json(names))

    def cell_specs(self) -> dict[str, list[str]]:
        """``{slug: ["R5F4", ...]}``, for display and editing."""
        out: dict[str, list[str]] = {slug: [] for slug in self.names}
        for (r, f), slug in sorted(self.cells.items(), key=lambda i: (-i[0][0], -i[0][1])):
            out.setdefault(slug, []).append(f"R{r}F{f}")
        return out


def names_from_json(names: object) -> dict[str, str]:
    """``[[slug, name], ...]`` (or a plain mapping) -> ordered ``{slug: name}``."""
    if isinstance(names, Mapping):
        return {str(k): str(v) for k, v in names.items()}
    return {str(slug): str(name) for slug, name in names or []}  # type: ignore[attr-defined]


def parse_cell_spec(spec: str, field: str) -> list[tuple[int, int]]:
    """``"R1-2F3-4"`` -> the four cells; ranges are inclusive and may be written either way."""
    match = _SPEC.match(spec.replace(" ", "").upper())
    if not match:
        raise RfmError(
            RfmErrorCode.INVALID_CELL,
            f"'{spec}' is not a cell: write R<score>F<score>, ranges like R1-2F3-4 (scores 1-5).",
            field,
        )
    r1, r2, f1, f2 = match.groups()
    r_lo, r_hi = sorted((int(r1), int(r2 or r1)))
    f_lo, f_hi = sorted((int(f1), int(f2 or f1)))
    return [(r, f) for r in range(r_lo, r_hi + 1) for f in range(f_lo, f_hi + 1)]


def build_segment_map(
    segments: Iterable[tuple[str, str, Iterable[str]]], field: str = "segments"
) -> SegmentMap:
    """Validate ``(slug, name, cell specs)`` triples into a map covering every cell once.

    Raises ``RfmError`` naming the first problem: an unknown slug format, a blank name, a
    malformed cell, a cell claimed twice, or cells nobody claims."""
    cells: dict[tuple[int, int], str] = {}
    names: dict[str, str] = {}
    for index, (slug, name, specs) in enumerate(segments):
        where = f"{field}[{index}]"
        if not isinstance(slug, str) or not _SLUG.match(slug):
            raise RfmError(
                RfmErrorCode.INVALID_SEGMENT,
                f"Segment key '{slug}' must be lowercase letters, digits or _ (max 64), "
                "starting with a letter.",
                f"{where}.slug",
            )
        if slug in names:
            raise RfmError(
                RfmErrorCode.INVALID_SEGMENT, f"Segment '{slug}' is listed twice.", f"{where}.slug"
            )
        if not str(name or "").strip():
            raise RfmError(RfmErrorCode.REQUIRED, "A segment needs a name.", f"{where}.name")
        names[slug] = str(name).strip()
        spec_list = [specs] if isinstance(specs, str) else list(specs)
        if not spec_list:
            raise RfmError(
                RfmErrorCode.REQUIRED, f"Segment '{slug}' has no cells.", f"{where}.cells"
            )
        for spec in spec_list:
            for cell in parse_cell_spec(str(spec), f"{where}.cells"):
                if cell in cells:
                    raise RfmError(
                        RfmErrorCode.DUPLICATE_CELL,
                        f"Cell R{cell[0]}F{cell[1]} is in both '{cells[cell]}' and '{slug}'.",
                        f"{where}.cells",
                    )
                cells[cell] = slug
    missing = sorted(ALL_CELLS - cells.keys(), key=lambda c: (-c[0], -c[1]))
    if missing:
        listed = ", ".join(f"R{r}F{f}" for r, f in missing)
        raise RfmError(
            RfmErrorCode.MISSING_CELL,
            f"Every R x F cell needs a segment; not covered: {listed}.",
            field,
        )
    return SegmentMap(cells=cells, names=names)


def default_segment_map() -> SegmentMap:
    return build_segment_map(DEFAULT_SEGMENTS)
