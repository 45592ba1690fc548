from hypothesis import given
from hypothesis import strategies as st

from producers.chunking import rechunk, skip_values


@given(st.lists(st.lists(st.text(max_size=3), max_size=50), max_size=30), st.integers(1, 40))
def test_rechunk_keeps_every_value_in_order_and_bounds_chunks(batches, size):
    chunks = list(rechunk(iter(batches), size))
    assert [v for c in chunks for v in c] == [v for b in batches for v in b]
    assert all(0 < len(c) <= size for c in chunks)
    assert all(len(c) == size for c in chunks[:-1])


def test_rechunk_is_lazy():
    def batches():
        yield ["a"] * 10
        raise AssertionError("read past what was asked for")

    assert next(rechunk(batches(), 10)) == ["a"] * 10


@given(st.lists(st.lists(st.text(max_size=3), max_size=20), max_size=10), st.integers(0, 250))
def test_skip_values_drops_exactly_the_first_values(batches, count):
    flat = [v for b in batches for v in b]
    assert [v for b in skip_values(iter(batches), count) for v in b] == flat[count:]


@given(
    st.lists(st.lists(st.text(max_size=3), max_size=50), max_size=30),
    st.integers(1, 40),
    st.data(),
)
def test_resuming_after_any_whole_chunk_gives_the_same_chunks(batches, size, data):
    """What resume stages (skip what was staged, rechunk) continues the first run's chunks."""
    chunks = list(rechunk(iter(batches), size))
    staged = data.draw(st.integers(0, len(chunks)))
    skipped = sum(map(len, chunks[:staged]))
    assert list(rechunk(skip_values(iter(batches), skipped), size)) == chunks[staged:]
