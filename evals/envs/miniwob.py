"""MiniWoB++ as an eval environment: the `miniwob` package's task pages served over HTTP on
127.0.0.1 and driven in the worker's `BrowserSession`.

An episode starts the way the package's own Selenium driver starts one (`selenium_instance.py`):
end any running episode, `Math.seedrandom(seed)`, `core.setDataMode(...)`, then
`core.startEpisodeReal()`. Two things differ, both for a slow LLM agent: the page's episode timer
(`core.EPISODE_MAX_TIME`, 10 s to 30 s per task) is raised to about 24 days (the largest delay
`setTimeout` honours), and a hook on `core.endEpisode` records the FIRST episode's
done / raw reward / reward, because the page invites a new episode (a START cover) once one
ends and starting it resets the `WOB_*` globals. The reward is the benchmark's: the raw reward
(−1…1, partial for some tasks) counts, success is raw reward > 0.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from agentforge.errors import ConfigError, ToolError
from agentforge.evals.envs.base import Evaluation

if TYPE_CHECKING:
    from agentforge.tools.builtin.browser_session import BrowserSession

INSTALL_HINT = (
    "MiniWoB++ evals need the `miniwob` package: run `uv sync --extra evals` "
    "(or `pip install miniwob`)"
)
# setTimeout treats delays above 2**31 - 1 ms as 0: the episode would time out at once
EPISODE_MAX_TIME_MS = 2**31 - 1
READY_TIMEOUT_MS = 10_000

_READY_JS = """() => document.readyState === 'complete' && typeof core !== 'undefined'
  && document.getElementById('sync-task-cover') !== null"""
# core.endEpisode ignores calls once the episode is over (EP_TIMER null): record only real ends
_START_JS = """([seed, mode, maxTime]) => {
  core.endEpisode(0);
  if (!core.__afHooked) {
    const end = core.endEpisode;
    core.endEpisode = function (...args) {
      const live = core.EP_TIMER !== null;
      const result = end.apply(this, args);
      if (live && window.__afFirstEpisode === null) {
        window.__afFirstEpisode = {done: WOB_DONE_GLOBAL, raw_reward: WOB_RAW_REWARD_GLOBAL,
                                   reward: WOB_REWARD_GLOBAL, reason: WOB_REWARD_REASON};
      }
      return result;
    };
    core.__afHooked = true;
    // the reward / timer box is for humans: keep it out of the agent's observation
    const style = document.createElement('style');
    style.textContent = '#reward-display, #click-canvas { display: none !important; }';
    document.head.appendChild(style);
  }
  window.__afFirstEpisode = null;
  Math.seedrandom(seed);
  core.setDataMode(mode);
  core.EPISODE_MAX_TIME = maxTime;
  core.startEpisodeReal();
}"""
_TASK_READY_JS = "() => WOB_TASK_READY === true"
_UTTERANCE_JS = """() => {
  const u = core.getUtterance();
  return typeof u === 'string' ? u : u.utterance;
}"""
_RESULT_JS = """() => window.__afFirstEpisode === undefined ? null : window.__afFirstEpisode"""


def miniwob_html_dir() -> Path:
    """The `html/` directory the `miniwob` package ships (core/, common/, miniwob/ …)."""
    try:
        import miniwob
    except ImportError:
        raise ConfigError(INSTALL_HINT) from None
    html = Path(miniwob.__file__).resolve().parent / "html"
    if not (html / "core" / "core.js").is_file():
        raise ConfigError(f"the miniwob package has no task pages under {html}; {INSTALL_HINT}")
    return html


class _QuietHandler(SimpleHTTPRequestHandler):
    # the pages declare no charset: without one Chromium reads their UTF-8 text as Windows-1252
    extensions_map: ClassVar[dict[str, str]] = {
        **SimpleHTTPRequestHandler.extensions_map,
        ".html": "text/html; charset=utf-8",
        ".js": "text/javascript; charset=utf-8",
        ".css": "text/css; charset=utf-8",
    }

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the browser dropping a connection mid-response (navigating on) is normal


class MiniWoBEnvironment:
    """MiniWoB++ tasks (`{"env": "click-button", ...}`) on a local HTTP server.
    `data_mode` is MiniWoB's own per-episode data mode ("train" like the Python env's default;
    a few transfer tasks draw different problems in "test")."""

    def __init__(self, *, data_mode: str = "train", host: str = "127.0.0.1") -> None:
        self.data_mode = data_mode
        self.host = host
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise ToolError("the MiniWoB environment is not started")
        return f"http://{self.host}:{self._server.server_address[1]}"

    def task_url(self, env: str) -> str:
        return f"{self.base_url}/miniwob/{env}.html"

    async def start(self) -> None:
        if self._server is not None:
            return
        handler = functools.partial(_QuietHandler, directory=str(miniwob_html_dir()))
        self._server = _QuietServer((self.host, 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="miniwob-http", daemon=True
        )
        self._thread.start()

    async def reset(self, task: dict[str, Any], session: BrowserSession, seed: int) -> str:
        env = _env_name(task)
        await session.goto(self.task_url(env))
        page = session.page
        try:
            await page.wait_for_function(_READY_JS, timeout=READY_TIMEOUT_MS)
            await page.evaluate(_START_JS, [seed, self.data_mode, EPISODE_MAX_TIME_MS])
            await page.wait_for_function(_TASK_READY_JS, timeout=READY_TIMEOUT_MS)
            utterance = await page.evaluate(_UTTERANCE_JS)
        except Exception as exc:
            raise ToolError(f"MiniWoB task {env!r} did not start: {_first_line(exc)}") from exc
        if not utterance:
            raise ToolError(f"MiniWoB task {env!r} gave no instruction")
        await session.observe()  # element ids for the freshly generated problem
        return str(utterance)

    async def evaluate(
        self, task: dict[str, Any], session: BrowserSession, answer: str
    ) -> Evaluation:
        try:
            first = await session.page.evaluate(_RESULT_JS)
        except Exception as exc:
            first = None
            reason = f"could not read the episode's result: {_first_line(exc)}"
        else:
            reason = "the episode didn't end (no reward was given)"
        if not first or not first.get("done"):
            details = {"done": False, "raw_reward": 0.0, "reward": 0.0, "reason": reason}
            return Evaluation(reward=0.0, success=False, details=details)
        raw = float(first.get("raw_reward") or 0.0)
        details = {
            "done": True,
            "raw_reward": raw,
            "reward": float(first.get("reward") or 0.0),
            "reason": first.get("reason"),
        }
        return Evaluation(reward=raw, success=raw > 0, details=details)

    async def ended(self, session: BrowserSession) -> bool:
        """Whether the episode is over (MiniWoB++ ends it on the deciding action)."""
        try:
            return bool(await session.page.evaluate(_RESULT_JS))
        except Exception:  # the page is navigating: not a finished episode
            return False

    async def close(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)


def _env_name(task: dict[str, Any]) -> str:
    env = task.get("env") or str(task.get("task_id", "")).removeprefix("miniwob.")
    if not env or "/" in env or env.startswith("."):
        raise ConfigError(f"MiniWoB task needs an `env` page name, got {task!r}")
    return str(env)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__
