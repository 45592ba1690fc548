"""What a person sees: the live progress line and the human-readable report."""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from audiencesync.domain.modes import VERB
from audiencesync.store.meta import RunMeta
from audiencesync.store.runs import RunStore
from audiencesync.throttle.summary import throttle_line

BAR_WIDTH = 30
NO_RATE = ("failed", "cancelled")  # a rate of a run that did not finish would mislead


def progress_line(meta: RunMeta, now: float) -> str:
    done_chunks, staged = meta.chunks_done, meta.chunks_staged
    ids_done, ids_read, producer_done = meta.ids_done, meta.ids_read, meta.producer_done
    total_ids = ids_read if producer_done else max(meta.estimated_ids, ids_read)
    elapsed_s = max(now - (meta.started_at or now), 1e-6)
    rate = ids_done / elapsed_s
    share = ids_done / total_ids if total_ids else 0.0
    filled = int(share * BAR_WIDTH)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    chunks_total = str(staged) if producer_done else f"{staged}+"
    eta = f"{(total_ids - ids_done) / rate:5.0f}s" if rate > 0 and total_ids else "    ?"
    return (
        f"[{bar}] {share:6.1%}  chunks {done_chunks}/{chunks_total}  "
        f"{ids_done:,} IDs  {rate:,.0f} IDs/s  ETA {eta}"
    )


class ProgressBar:
    """Redraws the progress line on a terminal (or prints it now and then elsewhere)."""

    def __init__(self, store: RunStore, run_id: str, out: TextIO = sys.stderr, every_s=0.5):
        self.store, self.run_id, self.out, self.every_s = store, run_id, out, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._tty = out.isatty()
        self._drawn = 0  # width of the line now on the terminal

    def __enter__(self) -> ProgressBar:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._draw(final=True)

    def _loop(self) -> None:
        interval_s = self.every_s if self._tty else max(self.every_s, 5.0)
        while not self._stop.wait(interval_s):
            self._draw()

    def _draw(self, final: bool = False) -> None:
        try:
            meta = self.store.run(self.run_id)
            if meta is None:
                return
            line = progress_line(meta, time.time())
        except Exception:  # a progress line is never worth failing the run
            return
        if final and meta.producer_done and not meta.chunks_staged:
            # Nothing was sent (a mirror run with no change, an empty source): no 0/0 bar
            # left behind; the report says why.
            if self._drawn:
                self.out.write("\r" + " " * self._drawn + "\r")
                self.out.flush()
            return
        end = "\n" if final or not self._tty else ""
        self.out.write(("\r" if self._tty else "") + line + end)
        self.out.flush()
        self._drawn = len(line) if self._tty and not final else 0


def format_report(report: dict) -> str:
    rejected = report["ids_rejected"]
    lines = [
        f"run {report['run_id']}: {report['status'].upper()}"
        + (f" - {report['message']}" if report.get("message") else ""),
        f"  audience {report['audience_id']} ({report['mode']}), source {report['source']}",
        f"  read      {report['ids_read']:>12,}",
        f"  {VERB.get(report['mode'], 'uploaded'):<9} {report['ids_uploaded']:>12,}",
        f"  rejected  {sum(rejected.values()):>12,}  "
        + ", ".join(f"{k} {v:,}" for k, v in rejected.items()),
        *(
            f"            {reason} e.g. " + ", ".join(map(repr, shown))
            for reason, shown in report.get("rejected_samples", {}).items()
        ),
        f"  duplicate {report['duplicates']:>12,}",
        f"  failed    {report['ids_failed']:>12,}  in {report['chunks_failed']} of "
        f"{report['chunks']} chunks",
        f"  requests {report['requests']:,} (retries {report['retries']:,}, throttled "
        f"{report['throttled']:,}); Meta received {report['num_received']:,}, "
        f"invalid {report['num_invalid_entries']:,}",
        f"  {report['duration_s']:.1f}s"
        + ("" if report["status"] in NO_RATE else f", {report['ids_per_s']:,.0f} IDs/s"),
    ]
    if report["mode"] == "mirror":
        lines.insert(
            3,
            f"  added {report['added']:,}, removed {report['removed']:,} of "
            f"{report['removals_planned']:,}, unchanged {report['unchanged']:,}",
        )
    if "throttle" in report:
        lines.append(throttle_line(report["throttle"]))
    lines += [
        f"  chunk {f['chunk']}: {f['ids']:,} IDs: {f['reason']}"
        for f in report["failed_chunks"][:10]
    ]
    return "\n".join(lines)


def run_row(run_id: str, meta: RunMeta, report: dict | None, now: float) -> dict:
    """One line of `audiencesync runs`: from the report when finished, from progress otherwise."""
    audience = meta.audience_name or meta.audience_id or "?"
    if report is not None:
        return {
            "run_id": run_id,
            "audience": audience,
            "status": report["status"],
            "ids": report["ids_uploaded"],
            "ids_per_s": report["ids_per_s"],
            "duration_s": report["duration_s"],
        }
    elapsed_s = max(now - (meta.started_at or now), 1e-6)
    ids_done = meta.ids_done
    return {
        "run_id": run_id,
        "audience": audience,
        "status": meta.status.value,
        "ids": ids_done,
        "ids_per_s": round(ids_done / elapsed_s, 1),
        "duration_s": round(elapsed_s, 3),
    }


def format_runs(rows: list[dict]) -> str:
    header = f"{'run id':<22} {'audience':<24} {'status':<22} {'IDs':>12} {'IDs/s':>10} {'time':>9}"
    lines = [header]
    for row in rows:
        rate = "-" if row["status"] in NO_RATE else f"{row['ids_per_s']:,.0f}"
        lines.append(
            f"{row['run_id']:<22} {row['audience'][:24]:<24} {row['status']:<22} "
            f"{row['ids']:>12,} {rate:>10} {row['duration_s']:>8.1f}s"
        )
    return "\n".join(lines)
