"""Reports over one or more run directories: success rate with 95% (Wilson) intervals, steps,
tokens, cost and wall time, per pass and per task template, side by side across runs — as data
(`build_report`), a self-contained HTML page with learning-curve and tokens-per-success plots
(`render_html`); the CLI draws the terminal tables."""

from __future__ import annotations

import html
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from agentforge.errors import NotFoundError
from agentforge.evals.harness import RUN_FILE, read_episodes

Z95 = 1.959963984540054


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a success rate (sound at 0 %, 100 % and small n)."""
    if n == 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(records)
    wins = sum(1 for r in records if r.get("success"))
    tokens = sum(int(r.get("tokens") or 0) for r in records)
    low, high = wilson(wins, n)
    return {
        "episodes": n, "successes": wins, "success_rate": wins / n if n else 0.0,
        "ci95": [low, high],
        "steps_mean": sum(int(r.get("actions") or 0) for r in records) / n if n else 0.0,
        "tokens": tokens, "tokens_per_episode": tokens / n if n else 0.0,
        "tokens_per_success": tokens / wins if wins else None,
        "cost": sum(float(r.get("cost") or 0.0) for r in records),
        "seconds": sum(float(r.get("seconds") or 0.0) for r in records),
        "errors": sum(1 for r in records if r.get("error")),
        # growth: memory size, recall latency and learning cost as episodes accumulate
        "memory_items": max((r["memory_items"] for r in records
                             if r.get("memory_items") is not None), default=None),
        "recall_ms_median": _median([h["ms"] for r in records for h in r.get("memory_hits", [])
                                     if h.get("ms") is not None]),
        "learn_tokens_per_episode": (sum(int(r.get("learn_tokens") or 0) for r in records) / n
                                     if n else 0.0),
    }


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def load_run(directory: Path) -> dict[str, Any]:
    run_file = directory / RUN_FILE
    if not run_file.is_file():
        raise NotFoundError(f"{directory} is not a run directory (no {RUN_FILE})")
    meta = json.loads(run_file.read_text(encoding="utf-8"))
    return {"dir": str(directory), "meta": meta, "episodes": read_episodes(directory)}


def run_label(run: dict[str, Any]) -> str:
    config = run["meta"]["config"]
    return f"{Path(run['dir']).name} ({config['memory']})"


def build_report(directories: list[Path]) -> dict[str, Any]:
    runs = []
    for directory in directories:
        run = load_run(directory)
        episodes = run["episodes"]
        by_pass: dict[tuple[int, str], list[dict[str, Any]]] = defaultdict(list)
        by_template: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        for r in episodes:
            by_pass[(int(r["pass"]), str(r["phase"]))].append(r)
            by_template[(str(r["template"]), str(r["phase"]))].append(r)
        runs.append({
            "dir": run["dir"], "label": run_label(run), "config": run["meta"]["config"],
            "model_id": run["meta"].get("model_id"), "versions": run["meta"].get("versions"),
            "overall": summarize(episodes),
            "passes": [{"pass": p, "phase": ph, **summarize(rs)}
                       for (p, ph), rs in sorted(by_pass.items())],
            "templates": [{"template": t, "phase": ph, **summarize(rs)}
                          for (t, ph), rs in sorted(by_template.items())],
        })
    return {"runs": runs}


# --- HTML -------------------------------------------------------------------------------------

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:72em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
svg{background:#fff;border:1px solid #ddd;margin:.5em 1em .5em 0}.muted{color:#777}"""


def render_html(report: dict[str, Any]) -> str:
    series_rate, series_tokens = [], []
    for i, run in enumerate(report["runs"]):
        colour = _COLOURS[i % len(_COLOURS)]
        for phase in sorted({p["phase"] for p in run["passes"]}):
            points = [p for p in run["passes"] if p["phase"] == phase]
            label = run["label"] + ("" if phase == "all" else f" · {phase}")
            dash = "6,3" if phase == "test" else ""
            series_rate.append((label, colour, dash, [
                (p["pass"], p["success_rate"], p["ci95"]) for p in points]))
            series_tokens.append((label, colour, dash, [
                (p["pass"], p["tokens_per_success"], None) for p in points
                if p["tokens_per_success"] is not None]))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>AgentForge eval report</title>",
        f"<style>{_CSS}</style></head><body><h1>AgentForge eval report</h1>",
        _svg_plot("Success rate per pass (95% CI)", series_rate, y_max=1.0, percent=True),
        _svg_plot("Model tokens per success", series_tokens, y_max=None, percent=False),
        "<h2>Per pass</h2>", _html_table(report, "passes"),
        "<h2>Per task template</h2>", _html_table(report, "templates"),
        "<h2>Runs</h2>", _html_runs(report), "</body></html>"]
    return "\n".join(parts)


def _fmt_rate(row: dict[str, Any]) -> str:
    low, high = row["ci95"]
    return f"{row['success_rate']:.0%} [{low:.0%}, {high:.0%}]"


def _html_table(report: dict[str, Any], key: str) -> str:
    first = "pass" if key == "passes" else "template"
    growth = key == "passes"
    head = (f"<tr><th>run</th><th>{first}</th><th>phase</th><th>n</th><th>success (95% CI)</th>"
            "<th>steps</th><th>tokens/episode</th><th>tokens/success</th><th>cost $</th>"
            "<th>wall s</th>" + ("<th>memory items</th><th>recall ms (median)</th>"
                                 "<th>learn tokens/episode</th>" if growth else "") + "</tr>")
    rows = []
    for run in report["runs"]:
        for row in run[key]:
            tps = row["tokens_per_success"]
            rows.append(
                f"<tr><td>{html.escape(run['label'])}</td><td>{html.escape(str(row[first]))}"
                f"</td><td>{row['phase']}</td><td>{row['episodes']}</td>"
                f"<td>{_fmt_rate(row)}</td><td>{row['steps_mean']:.1f}</td>"
                f"<td>{row['tokens_per_episode']:.0f}</td>"
                f"<td>{'–' if tps is None else f'{tps:.0f}'}</td><td>{row['cost']:.4f}</td>"
                f"<td>{row['seconds']:.0f}</td>" + (_growth_cells(row) if growth else "")
                + "</tr>")
    return "<table>" + head + "".join(rows) + "</table>"


def _growth_cells(row: dict[str, Any]) -> str:
    items, ms = row.get("memory_items"), row.get("recall_ms_median")
    return (f"<td>{'–' if items is None else items}</td>"
            f"<td>{'–' if ms is None else f'{ms:.1f}'}</td>"
            f"<td>{row.get('learn_tokens_per_episode', 0.0):.0f}</td>")


def _html_runs(report: dict[str, Any]) -> str:
    items = []
    for run in report["runs"]:
        config = html.escape(json.dumps(run["config"]))
        versions = html.escape(json.dumps(run.get("versions") or {}))
        items.append(f"<li><b>{html.escape(run['label'])}</b> — {html.escape(run['dir'])}<br>"
                     f"model {html.escape(str(run.get('model_id')))}<br>"
                     f"<span class='muted'>config {config}<br>versions {versions}</span></li>")
    return "<ul>" + "".join(items) + "</ul>"


Series = tuple[str, str, str, list[tuple[int, float, list[float] | None]]]


def _svg_plot(title: str, series: list[Series], *, y_max: float | None,
              percent: bool) -> str:
    width, height, left, right, top, bottom = 520, 300, 56, 16, 30, 40
    passes = sorted({x for *_, pts in series for x, _, _ in pts}) or [1]
    values = [y for *_, pts in series for _, y, _ in pts]
    top_value = y_max if y_max is not None else max([*values, 1.0]) * 1.1
    x_lo, x_hi = passes[0], max(passes[-1], passes[0] + 1)

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * (width - left - right)

    def py(y: float) -> float:
        return top + (1 - y / top_value) * (height - top - bottom)

    full_height = height + 18 * len(series)
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{full_height}'>",
           f"<text x='{left}' y='18' font-size='14' font-weight='bold'>{html.escape(title)}</text>"]
    for i in range(5):  # grid and y labels
        y = top_value * i / 4
        label = f"{y:.0%}" if percent else f"{y:.0f}"
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{py(y):.1f}' y2='{py(y):.1f}' "
                   "stroke='#eee'/>"
                   f"<text x='{left - 6}' y='{py(y) + 4:.1f}' font-size='11' "
                   f"text-anchor='end'>{label}</text>")
    for x in passes:
        out.append(f"<text x='{px(x):.1f}' y='{height - bottom + 16}' font-size='11' "
                   f"text-anchor='middle'>pass {x}</text>")
    for j, (label, colour, dash, pts) in enumerate(series):
        if pts:
            path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y, _ in pts)
            out.append(f"<polyline points='{path}' fill='none' stroke='{colour}' "
                       f"stroke-width='2' stroke-dasharray='{dash}'/>")
        for x, y, ci in pts:
            if ci is not None:
                out.append(f"<line x1='{px(x):.1f}' x2='{px(x):.1f}' y1='{py(ci[0]):.1f}' "
                           f"y2='{py(ci[1]):.1f}' stroke='{colour}' stroke-opacity='.5'/>")
            out.append(f"<circle cx='{px(x):.1f}' cy='{py(y):.1f}' r='3.5' fill='{colour}'/>")
        ly = height + 18 * j + 4
        out.append(f"<line x1='{left}' x2='{left + 24}' y1='{ly}' y2='{ly}' stroke='{colour}' "
                   f"stroke-width='2' stroke-dasharray='{dash}'/><text x='{left + 30}' "
                   f"y='{ly + 4}' font-size='11'>{html.escape(label)}</text>")
    out.append("</svg>")
    return "".join(out)
