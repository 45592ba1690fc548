"""A replace run's report section: how its IDs went, and what Meta did with its session (pure).

A run that cut over (replace_window.py) sent part of the source as replace batches and the rest as
/users adds after the session's close; its report says how many each, and what the audience
went through.
"""

from __future__ import annotations

from datetime import UTC, datetime

from audiencesync.store.meta import RunMeta


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at, tz=UTC).isoformat("T", "seconds")


def replace_section(meta: RunMeta, results: list[dict]) -> dict:
    by_add = sum(r["uploaded"] for r in results if r.get("sent_as") == "add")
    return {
        "by_replace": sum(r["uploaded"] for r in results if r.get("sent_as") != "add"),
        "by_add": by_add,
        "cutover": meta.replace_cutover_at is not None,
        "timed_out": meta.replace_timed_out,  # Meta's window ended the session
        "opened_at": _iso(meta.replace_opened_at),  # batch 1 accepted
        "cutover_at": _iso(meta.replace_cutover_at),
        "closed_at": _iso(meta.replace_closed_at),
        "slowest_call_s": meta.replace_call_s,
        "close_error": meta.replace_close_error,
    }


def cutover_message(section: dict) -> str:
    """Say what happened to the audience when the replace did not end within Meta's window."""
    replaced, added = section["by_replace"], section["by_add"]
    if section["timed_out"]:
        how = (
            "Meta ended the replace session 90 minutes after its first batch and replaced the "
            f"audience with the {replaced:,} IDs that had arrived"
        )
    elif section["close_error"]:
        how = (
            f"the replace session's close was refused ({section['close_error']}), so Meta ended "
            f"it 90 minutes after its first batch, replacing the audience with the {replaced:,} "
            "IDs that had arrived"
        )
    else:
        how = (
            "the replace could not end within Meta's 90-minute session at the pace measured "
            f"(up to {section['slowest_call_s']:.1f} s a call), so its session was closed at "
            f"{section['closed_at'] or section['cutover_at']} with the {replaced:,} IDs Meta had "
            "and the audience replaced with them"
        )
    return (
        f"{how}; the other {added:,} IDs were then added with /users (no removal): the audience "
        f"holds all {replaced + added:,}. Members not in the source were removed by the replace; "
        "those in the added part were out of the audience from the close until their add"
    )


def apply_replace(report: dict, meta: RunMeta, results: list[dict]) -> None:
    section = replace_section(meta, results)
    report["replace"] = section
    if section["cutover"] and section["by_add"]:
        note = cutover_message(section)
        report["message"] = f"{report['message']}; {note}" if report["message"] else note
