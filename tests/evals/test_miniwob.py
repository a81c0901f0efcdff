"""The MiniWoB++ environment on the real system Chromium: the suite file, seeded resets that
return the page's own utterance, oracle episodes played through `BrowserSession` the way an agent
plays them (observe, then act on element ids), wrong and missing actions, and the first episode's
reward surviving a second episode. Skipped, with the reason, when Chromium or `miniwob` is
missing."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from agentforge.errors import ConfigError
from agentforge.evals.envs.miniwob import MiniWoBEnvironment, miniwob_html_dir
from agentforge.tools.builtin.browser_session import BrowserSession
from tests.browser import in_browser

SUITE = Path(__file__).resolve().parents[2] / "evals" / "suites" / "miniwob.json"
_ITEM = re.compile(r'^\[(\d+)\] (\w+) "((?:[^"\\]|\\.)*)"')
_QUOTED = re.compile(r'"([^"]+)"')


pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("miniwob") is None,
        reason="miniwob is not installed (uv sync --extra evals)",
    ),
]
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env() -> AsyncIterator[MiniWoBEnvironment]:
    environment = MiniWoBEnvironment()
    await environment.start()
    yield environment
    await environment.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session() -> AsyncIterator[BrowserSession]:
    async with BrowserSession(timeout_s=10) as browser:
        yield browser


def task(name: str) -> dict[str, Any]:
    return {"task_id": f"miniwob.{name}", "env": name, "split": "train"}


def items(observation: str, role: str) -> list[tuple[int, str]]:
    """(id, name) of every element of `role` in an observation."""
    found = []
    for line in observation.splitlines():
        match = _ITEM.match(line.strip())
        if match and match.group(2) == role:
            found.append((int(match.group(1)), match.group(3).replace('\\"', '"')))
    return found


def only(observation: str, role: str, name: str | None = None) -> int:
    ids = [i for i, label in items(observation, role) if name is None or label == name]
    assert ids, f"no {role} {name!r} in:\n{observation}"
    return ids[0]


# --- the suite file --------------------------------------------------------------------------


def test_suite_file_lists_loadable_tasks_in_both_splits() -> None:
    suite = json.loads(SUITE.read_text())
    assert suite["name"] == "miniwob"
    assert suite["environment"] == {"type": "miniwob"}
    assert "split" in suite["description"].lower()
    tasks = suite["tasks"]
    assert len(tasks) >= 40
    assert len({t["task_id"] for t in tasks}) == len(tasks)
    assert {t["split"] for t in tasks} == {"train", "test"}
    pages = miniwob_html_dir() / "miniwob"
    for t in tasks:
        assert t["task_id"] == f"miniwob.{t['env']}"
        assert t["intent_template_id"] == t["env"]
        assert t["eval"] == {"eval_types": ["miniwob_reward"]}
        assert t["intent"] and t["start_url"] == ""
        assert (pages / f"{t['env']}.html").is_file(), t["env"]
    for kind in {t["kind"] for t in tasks}:  # stratified: every kind has both splits
        assert {t["split"] for t in tasks if t["kind"] == kind} == {"train", "test"}, kind


# --- reset -----------------------------------------------------------------------------------


@in_browser
async def test_reset_returns_the_pages_utterance_deterministically(
    env: MiniWoBEnvironment, session: BrowserSession
) -> None:
    first = await env.reset(task("click-button"), session, 7)
    again = await env.reset(task("click-button"), session, 7)
    assert first == again
    assert first.startswith("Click on the")
    assert session.page.url == env.task_url("click-button")
    assert session.page.url.startswith("http://127.0.0.1:")
    others = {await env.reset(task("click-button"), session, seed) for seed in range(1, 6)}
    assert len(others) > 1
    # the episode timer no longer runs out on a slow agent
    assert await session.page.evaluate("core.EPISODE_MAX_TIME") >= 2**31 - 1


# --- oracle, wrong and missing actions ---------------------------------------------------------


@in_browser
async def test_oracle_click_button_succeeds(
    env: MiniWoBEnvironment, session: BrowserSession
) -> None:
    utterance = await env.reset(task("click-button"), session, 11)
    wanted = _QUOTED.search(utterance)
    assert wanted, utterance
    await session.click(only(await session.observe(), "button", wanted.group(1)))
    result = await env.evaluate(task("click-button"), session, "")
    assert result.success
    assert result.reward == result.details["raw_reward"] == 1.0
    assert result.details["done"] is True
    assert result.details["reward"] > 0.99  # the time penalty is negligible without a limit


@in_browser
async def test_oracle_enter_text_succeeds(env: MiniWoBEnvironment, session: BrowserSession) -> None:
    utterance = await env.reset(task("enter-text"), session, 3)
    text = _QUOTED.search(utterance)
    assert text, utterance
    observation = await session.observe()
    await session.type(only(observation, "textbox"), text.group(1))
    await session.click(only(await session.observe(), "button", "Submit"))
    result = await env.evaluate(task("enter-text"), session, "")
    assert result.success and result.reward > 0, result.details


@in_browser
async def test_oracle_choose_list_succeeds(
    env: MiniWoBEnvironment, session: BrowserSession
) -> None:
    utterance = await env.reset(task("choose-list"), session, 5)
    choice = re.match(r"Select (.+) from the list", utterance)
    assert choice, utterance
    await session.select(only(await session.observe(), "combobox"), choice.group(1))
    await session.click(only(await session.observe(), "button", "Submit"))
    result = await env.evaluate(task("choose-list"), session, "")
    assert result.success and result.reward > 0, result.details


async def _reset_with_a_wrong_button(
    env: MiniWoBEnvironment, session: BrowserSession
) -> tuple[int, int]:
    """A click-button episode with a button other than the asked one: (right id, wrong id)."""
    for seed in range(100):
        utterance = await env.reset(task("click-button"), session, seed)
        wanted = _QUOTED.search(utterance)
        assert wanted, utterance
        buttons = items(await session.observe(), "button")
        right = [i for i, name in buttons if name == wanted.group(1)]
        wrong = [i for i, name in buttons if name != wanted.group(1)]
        if right and wrong:
            return right[0], wrong[0]
    raise AssertionError("no click-button seed below 100 shows two different buttons")


@in_browser
async def test_wrong_button_fails(env: MiniWoBEnvironment, session: BrowserSession) -> None:
    _, wrong = await _reset_with_a_wrong_button(env, session)
    await session.click(wrong)
    result = await env.evaluate(task("click-button"), session, "")
    assert not result.success
    assert result.reward == -1.0
    assert result.details["done"] is True


@in_browser
async def test_doing_nothing_fails_as_not_ended(
    env: MiniWoBEnvironment, session: BrowserSession
) -> None:
    await env.reset(task("click-button"), session, 2)
    result = await env.evaluate(task("click-button"), session, "I am done")
    assert not result.success
    assert result.reward == 0.0
    assert result.details["done"] is False
    assert "didn't end" in result.details["reason"]


@in_browser
async def test_the_first_episode_counts(env: MiniWoBEnvironment, session: BrowserSession) -> None:
    """Once an episode ends the page offers a new one; its reward must not replace the first."""
    _, wrong = await _reset_with_a_wrong_button(env, session)
    await session.click(wrong)
    page = session.page
    await page.evaluate("core.startEpisodeReal()")  # what clicking the START cover does
    assert await page.evaluate("WOB_DONE_GLOBAL") is False
    await page.evaluate("core.endEpisode(1.0)")  # the second episode is won
    assert await page.evaluate("WOB_RAW_REWARD_GLOBAL") == 1
    result = await env.evaluate(task("click-button"), session, "")
    assert not result.success
    assert result.reward == -1.0 and result.details["done"] is True


# --- setup errors ----------------------------------------------------------------------------


async def test_missing_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "miniwob", None)  # `import miniwob` raises ImportError
    with pytest.raises(ConfigError) as caught:
        await MiniWoBEnvironment().start()
    message = str(caught.value)
    assert "uv sync --extra evals" in message and "pip install miniwob" in message
    assert "\n" not in message
