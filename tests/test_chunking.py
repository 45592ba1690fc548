from hypothesis import given
from hypothesis import strategies as st

from producers.chunking import rechunk


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
