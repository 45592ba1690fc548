"""The sandbox's pure parts, without HTTP: form decoding, entry checks, the rate limiter."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote_plus, unquote_plus

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audiencesync.sandbox import faults, rules, state
from audiencesync.sandbox.config import SandboxConfig
from audiencesync.sandbox.faults import GraphFault
from audiencesync.sandbox.limits import Limits

UUID = "6d92078a-8246-4ba4-ae5b-76104861e7dc"


@given(st.text())
def test_form_decoding_matches_urllib(text: str) -> None:
    assert rules._unquote_plus(quote_plus(text).encode()) == text


@given(st.text(alphabet="%25aF+\\x&é"))
def test_form_decoding_matches_urllib_on_malformed_input(raw: str) -> None:
    assert rules._unquote_plus(raw.encode()) == unquote_plus(raw)


# A MAID with one character changed: the near misses a bytes-level layout scan could let by.
near_maid = st.builds(
    lambda at, ch: UUID[:at] + ch + UUID[at + 1 :],
    st.integers(0, len(UUID) - 1),
    st.sampled_from("0f-\nG "),
)
entry = st.one_of(
    st.sampled_from([UUID, UUID.upper(), f" {UUID}", rules.OPTED_OUT_ID, "a" * 64, "", 7, None]),
    st.text(alphabet="0123456789abcdef-\n", max_size=40),
    near_maid,
    near_maid,
)


@given(st.lists(entry, min_size=1, max_size=30))
def test_fast_path_agrees_with_entry_by_entry_checks(data: list[object]) -> None:
    entries = rules.classify(rules.Payload(multi_key=False, data=data))
    expected = [v for v in data if isinstance(v, str) and rules._reason(v) is None]
    assert entries.valid == expected
    assert entries.num_invalid == len(data) - len(expected)
    assert len(entries.samples) <= rules.SAMPLES_MAX


def test_an_entry_hiding_a_newline_cannot_pose_as_two() -> None:
    entries = rules.classify(rules.Payload(multi_key=False, data=[f"{UUID}\n{UUID}"]))
    assert entries.valid == [] and entries.num_invalid == 1


def test_older_and_newer_appsecret_proofs() -> None:
    def proof(message: str) -> str:
        return hmac.new(b"k", message.encode(), hashlib.sha256).hexdigest()

    params = {"access_token": "t", "appsecret_proof": proof("t")}
    rules.check_auth(params, "", "t", "k", now_s=1_000)
    newer = {"access_token": "t", "appsecret_proof": proof("t|1000"), "appsecret_time": "1000"}
    rules.check_auth(newer, "", "t", "k", now_s=1_300)
    with pytest.raises(GraphFault) as refused:
        rules.check_auth(newer, "", "t", "k", now_s=1_301)
    assert refused.value.code == 100


def test_limiter_window_slides_and_penalty_refuses_everything() -> None:
    limiter = Limits(SandboxConfig(rate_per_s=2, penalty_s=5, usage_header_after_calls=0))
    limiter.count_call("a")
    assert limiter.admit("a", 0.0).admitted and limiter.admit("a", 0.5).admitted
    refused = limiter.admit("a", 0.9)
    assert not refused.admitted and not refused.in_penalty
    assert limiter.admit("b", 0.9).admitted  # per account
    assert limiter.admit("a", 5.8).in_penalty
    usage = limiter.business_usage("a", 2.0)["a"][0]
    assert usage["estimated_time_to_regain_access"] == 1 and usage["call_count"] == 100
    assert limiter.admit("a", 5.9).admitted  # penalty over, window empty again
    assert limiter.business_usage("a", 5.9)["a"][0]["call_count"] == 50


def test_remove_floor_counts_only_present_members_once() -> None:
    audience = state.Audience("1", "9", members={f"{i:064x}" for i in range(101)})
    payload = rules.Payload(multi_key=False, data=[])
    harmless = ["f" * 64, "e" * 64, f"{0:064x}", f"{0:064x}"]  # leaves 100
    state.check_upload(audience, state.REMOVE, payload, None, harmless)
    with pytest.raises(GraphFault) as refused:
        state.check_upload(audience, state.REMOVE, payload, None, [f"{0:064x}", f"{1:064x}"])
    assert refused.value.code == faults.bad_param("").code
