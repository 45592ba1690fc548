import hashlib

from hypothesis import given
from hypothesis import strategies as st

from audiencesync.domain.normalize import (
    BLANK,
    INVALID_FORMAT,
    NOT_UTF8,
    OPTED_OUT,
    OPTED_OUT_ID,
    clean_values,
    normalize_id,
    prepare_chunk,
    prepare_staged,
    sha256_hex,
)
from audiencesync.store.staging import encode_raw

GOOD = "6d92078a-8246-4ba4-ae5b-76104861e7dc"
maids = st.uuids().map(str)


def test_trims_lowercases_and_keeps_hyphens():
    chunk = prepare_chunk([f"  {GOOD.upper()}\t"])
    assert chunk.entries == [GOOD]
    assert chunk.rejected == {}


def test_every_rejected_value_is_counted_by_reason():
    raw = [
        "",
        "   ",
        "nope",
        GOOD.replace("-", ""),
        OPTED_OUT_ID,
        OPTED_OUT_ID.upper(),
        "6d92078a-8246-4ba4-ae5b-76104861e7d\udcff",
        GOOD,
    ]
    chunk = prepare_chunk(raw)
    assert chunk.entries == [GOOD]
    assert chunk.rejected == {BLANK: 2, INVALID_FORMAT: 2, OPTED_OUT: 2, NOT_UTF8: 1}
    assert chunk.ids_in == len(raw)


def test_duplicates_after_normalising_are_dropped_and_counted():
    chunk = prepare_chunk([GOOD, GOOD.upper(), f" {GOOD} ", "x"])
    assert chunk.entries == [GOOD]
    assert chunk.duplicates == 2
    assert chunk.rejected == {INVALID_FORMAT: 1}


def test_hashing_sends_sha256_of_the_normalised_form():
    chunk = prepare_chunk([GOOD.upper()], hash_ids=True)
    assert chunk.entries == [hashlib.sha256(GOOD.encode()).hexdigest()]
    assert sha256_hex(GOOD) == chunk.entries[0]


@given(st.lists(st.one_of(maids, maids.map(str.upper), st.text(max_size=40))))
def test_no_value_is_lost_or_invented(raw):
    chunk = prepare_chunk(raw)
    assert chunk.ids_in == len(raw)
    assert len(set(chunk.entries)) == len(chunk.entries)
    assert set(chunk.entries) <= {normalize_id(v) for v in raw}


@given(st.lists(st.one_of(maids, st.text(max_size=40))))
def test_normalisation_is_idempotent(raw):
    once = prepare_chunk(raw).entries
    assert prepare_chunk(once).entries == once
    assert [normalize_id(v) for v in once] == once


@given(
    st.lists(
        st.one_of(
            maids,
            maids.map(str.upper),
            st.just(OPTED_OUT_ID),
            st.text(alphabet="0123456789abcdefABCDEF- \n", max_size=40),
            st.text(max_size=40),
        ),
        min_size=1,
    )
)
def test_the_staged_fast_path_agrees_with_the_generic_one(raw):
    raw = [v.replace("\n", " ") for v in raw]  # sources never stage a newline inside a value
    blob = encode_raw(raw)
    assert prepare_staged(blob, len(raw)) == prepare_chunk(raw)
    assert prepare_staged(blob, len(raw), hash_ids=True) == prepare_chunk(raw, hash_ids=True)


def test_the_fast_path_takes_clean_chunks_and_refuses_near_misses():
    clean = [GOOD.upper(), GOOD, OPTED_OUT_ID]
    assert clean_values(encode_raw(clean), 3) == [GOOD, GOOD, OPTED_OUT_ID]
    shifted = GOOD[:8] + GOOD[9:13] + "-" + GOOD[13:]  # right length, hyphen moved
    for near_miss in (
        [GOOD + " "],
        [shifted.replace("-", "a", 1)],
        [GOOD[:-1] + "g"],
        [GOOD[:-1], GOOD + "a"],
    ):
        assert clean_values(encode_raw(near_miss), len(near_miss)) is None
