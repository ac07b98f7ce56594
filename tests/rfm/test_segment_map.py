"""The R x F map: the issue's default grid, and validated edits per channel."""

import pytest

from saleor_crm_plugin.rfm import services
from saleor_crm_plugin.rfm.error_codes import RfmErrorCode
from saleor_crm_plugin.rfm.exceptions import RfmError
from saleor_crm_plugin.rfm.models import RfmSegmentMap
from saleor_crm_plugin.rfm.segments import (
    ALL_CELLS,
    DEFAULT_SEGMENTS,
    build_segment_map,
    default_segment_map,
    parse_cell_spec,
)
from tests.rfm.conftest import CHANNEL


def test_default_map_is_the_standard_grid():
    seg = default_segment_map()
    assert set(seg.cells) == ALL_CELLS
    expected = {
        (5, 5): "champions",
        (5, 4): "champions",
        (4, 5): "loyal",
        (3, 4): "loyal",
        (5, 3): "potential_loyalists",
        (4, 2): "potential_loyalists",
        (5, 1): "new",
        (4, 1): "promising",
        (3, 3): "need_attention",
        (3, 2): "about_to_sleep",
        (3, 1): "about_to_sleep",
        (2, 4): "at_risk",
        (1, 3): "at_risk",
        (1, 5): "cant_lose_them",
        (2, 5): "cant_lose_them",
        (2, 2): "hibernating",
        (1, 1): "hibernating",
    }
    for cell, slug in expected.items():
        assert seg.segment_of(*cell) == slug
    assert seg.names["cant_lose_them"] == "Can't Lose Them"
    assert list(seg.names) == [slug for slug, _, _ in DEFAULT_SEGMENTS]


def test_cell_specs_accept_ranges_in_either_direction():
    assert parse_cell_spec("r2-1 f5", "f") == [(1, 5), (2, 5)]


def _raises(segments, code, field, message_part):
    with pytest.raises(RfmError) as info:
        build_segment_map(segments)
    assert info.value.code == code
    assert info.value.field == field
    assert message_part in info.value.message


def test_a_cell_claimed_twice_is_rejected():
    segments = [*DEFAULT_SEGMENTS, ("vip", "VIP", ["R5F5"])]
    _raises(segments, RfmErrorCode.DUPLICATE_CELL, "segments[10].cells", "R5F5 is in both")


def test_uncovered_cells_are_listed():
    segments = [s for s in DEFAULT_SEGMENTS if s[0] != "at_risk"]
    _raises(segments, RfmErrorCode.MISSING_CELL, "segments", "R2F4, R2F3, R1F4, R1F3")


def test_malformed_cells_slugs_and_names_are_rejected():
    _raises([("vip", "VIP", ["R6F1"])], RfmErrorCode.INVALID_CELL, "segments[0].cells", "R6F1")
    _raises([("VIP!", "VIP", ["R1F1"])], RfmErrorCode.INVALID_SEGMENT, "segments[0].slug", "VIP!")
    _raises([("vip", " ", ["R1F1"])], RfmErrorCode.REQUIRED, "segments[0].name", "needs a name")
    _raises([("vip", "VIP", [])], RfmErrorCode.REQUIRED, "segments[0].cells", "no cells")
    _raises(
        [("vip", "VIP", ["R1F1"]), ("vip", "Again", ["R1F2"])],
        RfmErrorCode.INVALID_SEGMENT,
        "segments[1].slug",
        "listed twice",
    )


@pytest.mark.django_db
def test_per_channel_map_is_stored_and_a_bad_edit_keeps_it():
    two_segments = [("best", "Best", ["R4-5F1-5"]), ("rest", "Everyone else", ["R1-3F1-5"])]
    services.set_segment_map(CHANNEL, two_segments)
    assert services.get_segment_map(CHANNEL).segment_of(5, 1) == "best"
    assert services.get_segment_map("other-channel").segment_of(5, 1) == "new"

    with pytest.raises(RfmError) as info:
        services.set_segment_map(CHANNEL, [("best", "Best", ["R4-5F1-5"])])
    assert info.value.code == RfmErrorCode.MISSING_CELL
    assert services.get_segment_map(CHANNEL).names == {"best": "Best", "rest": "Everyone else"}

    services.reset_segment_map(CHANNEL)
    assert not RfmSegmentMap.objects.exists()
    assert services.get_segment_map(CHANNEL).segment_of(5, 1) == "new"
