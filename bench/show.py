"""bench.run's printed table and its PNG chart."""

from __future__ import annotations

from pathlib import Path

NEW_ACCOUNT = "audiencesync, account new to the gate"
LEARNED_ACCOUNT = "audiencesync, account it has learned"
NAMES = ["official SDK loop", "lean asyncio uploader", NEW_ACCOUNT, LEARNED_ACCOUNT]


def table(size_result: dict) -> list[str]:
    rows = {o["name"]: o for o in size_result["outcomes"]}
    sdk = rows.get("official SDK loop")
    lean = rows.get("lean asyncio uploader")
    lines = [
        f"\n{size_result['ids']:,} IDs",
        f"  {'contender':<38}{'wall s':>9}{'IDs/s':>12}{'x SDK':>8}{'of lean':>9}",
    ]
    for o in size_result["outcomes"]:
        x_sdk = f"{o['ids_per_s'] / sdk['ids_per_s']:.1f}" if sdk else "-"
        lines.append(
            f"  {o['name']:<38}{o['wall_s']:>9.1f}{o['ids_per_s']:>12,.0f}{x_sdk:>8}"
            + (f"{o['ids_per_s'] / lean['ids_per_s']:>9.2f}" if lean else f"{'-':>9}")
        )
    for name in (NEW_ACCOUNT, LEARNED_ACCOUNT):
        lines += details(name, rows[name]["extra"])
    return lines


def details(name: str, ours: dict) -> list[str]:
    """An audiencesync row's memory, CPU and Redis figures (and the gate's timeline, traced)."""
    rss = ", ".join(f"{k} {v:.0f} MB" for k, v in ours["peak_rss_mb"].items())
    cpu = ", ".join(f"{k} {v:.1f}" for k, v in ours["cpu_ms_per_chunk"].items())
    commands = ours["redis_commands_per_chunk"]
    top = ", ".join(f"{cmd} {n}" for cmd, n in list(commands.items())[:8])
    lines = [
        f"  {name}: first call at {ours['first_call_s']:.2f} s, "
        f"last answer at {ours['last_answer_s']:.2f} s",
        f"    peak RSS: producer {ours['producer_peak_rss_mb']:.0f} MB, {rss}; "
        f"Redis peak used_memory {ours['redis_peak_used_memory_mb']:.1f} MB",
        f"    CPU ms per 10,000-ID call: {cpu}",
        f"    Redis commands per call: {sum(commands.values()):.0f} ({top}, ...)",
    ]
    if "timeline" in ours:
        lines.append("    gate per second: s calls deferrals usage% limit blocked")
        lines += [
            f"    {t['s']:>3} {t['calls']:>4} {t['deferrals']:>4} {t['usage']:>6.0f} "
            f"{t['limit']:>3} {t['blocked']}"
            for t in ours["timeline"]
        ]
    return lines


def chart(results: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / len(results)
    for i, res in enumerate(results):
        by_name = {o["name"]: o["ids_per_s"] for o in res["outcomes"]}
        xs = [n + i * width for n in range(len(NAMES))]
        ax.bar(xs, [by_name.get(n, 0) for n in NAMES], width, label=f"{res['ids']:,} IDs")
    labels = [n.replace(", ", ",\n") for n in NAMES]
    ax.set_xticks([n + width * (len(results) - 1) / 2 for n in range(len(NAMES))], labels)
    ax.set_ylabel("IDs per second (higher is better)")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
