"""The run report: every chunk's small result dict aggregated into numbers that add up (pure).

Accounting identity, checked here and shown as `unaccounted` when it does not hold:
    ids_read = ids_uploaded + sum(ids_rejected) + duplicates + ids_failed
and a mirror run's own, in its terms (apply_mirror):
    ids_read = added + unchanged + rejected + duplicates + additions_failed, and separately
    removals_planned = removed + removals_failed; `unaccounted` is what either misses.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from audiencesync.domain.modes import MIRROR, RETRY_HINT, replace_failed_message, sessions
from audiencesync.domain.rejections import merge_samples, rejected_message
from audiencesync.domain.replace_report import apply_replace
from audiencesync.store.meta import RunMeta

MAX_LISTED_FAILURES = 50
MAX_INVALID_SAMPLES = 3
DROPPED_BY_CANCEL = "not sent: cancelled"  # how upload fails a chunk queued when a run is cancelled


def chunk_result(chunk: int, ids_in: int, **fields: object) -> dict:
    """The shape every header task returns: small, counts only, no IDs."""
    base: dict = {
        "chunk": chunk,
        "ids_in": ids_in,
        "uploaded": 0,
        "rejected": {},
        "rejected_samples": {},  # reason -> up to 3 values that are not IDs, cut to 40 chars
        "duplicates": 0,
        "failed": None,
        "ids_failed": 0,
        "requests": 0,
        "retries": 0,
        "throttled": 0,
        "num_received": 0,
        "num_invalid_entries": 0,
        "invalid_samples": [],
        "latency_s": 0.0,
    }
    base.update(fields)
    return base


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat(timespec="milliseconds")


def build_report(run_id: str, meta: RunMeta, results: list[dict], finished_at: float) -> dict:
    rejected: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    totals: Counter[str] = Counter()
    failures: list[dict] = []
    samples: list[str] = []
    results = sorted(results, key=lambda r: r["chunk"])
    for res in results:
        rejected.update(res["rejected"])
        for name in ("ids_in", "uploaded", "duplicates", "ids_failed", "requests", "retries"):
            totals[name] += res[name]
        for name in ("throttled", "num_received", "num_invalid_entries"):
            totals[name] += res[name]
        samples.extend(res["invalid_samples"][: MAX_INVALID_SAMPLES - len(samples)])
        if res["failed"]:
            reasons[res["failed"]] += 1
            if len(failures) < MAX_LISTED_FAILURES:
                failures.append(
                    {"chunk": res["chunk"], "ids": res["ids_failed"], "reason": res["failed"]}
                )

    ids_read = meta.ids_read
    accounted = totals["uploaded"] + sum(rejected.values()) + totals["duplicates"]
    accounted += totals["ids_failed"]
    report = {
        "run_id": run_id,
        "audience_id": meta.audience_id or None,
        "mode": meta.mode.value,
        "status": "completed",
        "message": "",
        "source": meta.source,
        "ids_read": ids_read,
        "ids_uploaded": totals["uploaded"],
        "ids_rejected": dict(sorted(rejected.items())),
        "rejected_samples": merge_samples(r.get("rejected_samples", {}) for r in results),
        "duplicates": totals["duplicates"],
        "ids_failed": totals["ids_failed"],
        "unaccounted": ids_read - accounted,
        "chunks": len(results),
        "chunks_failed": sum(reasons.values()),
        "failure_reasons": dict(reasons.most_common()),
        "failed_chunks": failures,
        "requests": totals["requests"],
        "retries": totals["retries"],
        "throttled": totals["throttled"],
        "num_received": totals["num_received"],
        "num_invalid_entries": totals["num_invalid_entries"],
        "invalid_samples": samples,
        "session_closed": False,
        "started_at": _iso(meta.started_at),
    }
    finish_timing(report, meta, finished_at)
    if report["mode"] == MIRROR:
        apply_mirror(report, meta, results)
    report["status"], report["message"] = _verdict(report, meta)
    if report["mode"] == "replace":
        apply_replace(report, meta, results)
    return report


def finish_timing(report: dict, meta: RunMeta, finished_at: float) -> None:
    """When the run ended and its pace; set again once the sessions are closed, so the closing
    calls count in the run's time as they do in the user's wait."""
    duration_s = max(finished_at - meta.started_at, 1e-9)
    report["finished_at"] = _iso(finished_at)
    report["duration_s"] = round(duration_s, 3)
    report["ids_per_s"] = round(report["ids_read"] / duration_s, 1)


def _verdict(report: dict, meta: RunMeta) -> tuple[str, str]:
    if meta.cancelled:  # `aborted` too, unless a resume raced the cancel
        return "cancelled", meta.aborted or "cancelled by an operator"
    if meta.replace_failed:
        return "failed", replace_failed_message(meta.replace_failed, meta, report["ids_uploaded"])
    if meta.aborted:
        return "failed", meta.aborted
    if meta.source_error:
        return "failed", (
            f"the source failed after {report['ids_read']} IDs: {meta.source_error}; fix it, "
            f"then finish the run with: audiencesync resume {report['run_id']}"
        )
    if report["unaccounted"]:
        return "failed", (
            f"{report['unaccounted']} IDs read were not accounted for by any chunk; "
            f"finish the run with: audiencesync resume {report['run_id']}"
        )
    if report["ids_read"] == 0:
        return "failed", "the source had no IDs: check the file, column or query"
    rejected, samples = report["ids_rejected"], report["rejected_samples"]
    if not report["ids_uploaded"] and not report["chunks_failed"] and not report.get("unchanged"):
        return "failed", "no ID could be sent: " + rejected_message(
            report["ids_read"], rejected, samples
        )
    if report["chunks_failed"]:
        top = next(iter(report["failure_reasons"]))
        hint = RETRY_HINT.get(report["mode"], RETRY_HINT["add"])
        reasons = report["failure_reasons"].items()
        dropped = sum(n for reason, n in reasons if reason.startswith(DROPPED_BY_CANCEL))
        if meta.resumed_after_cancel and dropped:
            return "completed_with_errors" if report["ids_uploaded"] else "failed", (
                f"resumed after a cancel: the {dropped} chunk(s) queued when it was cancelled "
                f"were dropped, not sent ({report['chunks_failed']} failed in all); {hint}"
            )
        status = "completed_with_errors" if report["ids_uploaded"] else "failed"
        return status, (
            f"{report['chunks_failed']} chunk(s) failed, most often: {top}; fix that, then " + hint
        )
    if 2 * sum(rejected.values()) > report["ids_read"]:  # sent, but most of the source was not
        return "completed", rejected_message(report["ids_read"], rejected, samples)
    return "completed", ""


def mirror_totals(meta: RunMeta, results: list[dict]) -> dict:
    """added/removed and their failures, from the chunks' outcomes split at removals_from."""
    edge = sessions(meta)[1].first_chunk  # removals_from
    adds = [r for r in results if r["chunk"] < edge]
    removes = [r for r in results if r["chunk"] >= edge]
    return {
        "added": sum(r["uploaded"] for r in adds),
        "additions_failed": sum(r["ids_failed"] for r in adds),
        "removed": sum(r["uploaded"] for r in removes),
        "removals_failed": sum(r["ids_failed"] for r in removes),
        "unchanged": meta.unchanged,
        "additions_planned": meta.additions_planned,
        "removals_planned": meta.removals_planned,
    }


def apply_mirror(report: dict, meta: RunMeta, results: list[dict]) -> None:
    """Re-state a report built from the chunks in the mirror run's terms."""
    totals = mirror_totals(meta, results)
    rejected = dict(report["ids_rejected"])
    for reason, count in meta.source_rejected.items():
        rejected[reason] = rejected.get(reason, 0) + count
    report.update(totals)
    report["ids_rejected"] = dict(sorted(rejected.items()))
    report["duplicates"] += meta.source_duplicates
    report["ids_read"] = meta.source_ids_read
    report["ids_per_s"] = round(report["ids_read"] / max(report["duration_s"], 1e-9), 1)
    read_side = totals["added"] + totals["unchanged"] + sum(rejected.values())
    read_side += report["duplicates"] + totals["additions_failed"]
    removal_side = totals["removed"] + totals["removals_failed"]
    report["unaccounted"] = (report["ids_read"] - read_side) + (
        totals["removals_planned"] - removal_side
    )
