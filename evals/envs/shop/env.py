"""`ShopEnvironment`: the local shop as an `EvalEnvironment` for WebArena-format tasks.

Task strings say `__SHOP__` for the shop's base URL. Every reset restores the seeded database
and forgets every session; a task with `require_login` starts signed in as its `login_as`
customer (default "emma.lopez", the main customer of the seeded data).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentforge.errors import ConfigError
from agentforge.evals.envs.base import Evaluation
from agentforge.evals.envs.shop.data import build_db
from agentforge.evals.envs.shop.server import COOKIE, ShopApp, ShopServer
from agentforge.evals.evaluators import Judge, evaluate_task, substitute

if TYPE_CHECKING:
    from agentforge.tools.builtin.browser_session import BrowserSession

MAIN_CUSTOMER = "emma.lopez"


class ShopEnvironment:
    """The shop on 127.0.0.1 (a free port unless `port` is given), its data in a temp dir."""

    def __init__(self, *, port: int = 0, judge: Judge | None = None) -> None:
        self.port = port
        self.judge = judge
        self._dir: Path | None = None
        self.app: ShopApp | None = None
        self.server: ShopServer | None = None

    @property
    def url(self) -> str:
        if self.server is None:
            raise ConfigError("the shop is not started: call start() first")
        return self.server.url

    @property
    def placeholders(self) -> dict[str, str]:
        return {"__SHOP__": self.url}

    async def start(self) -> None:
        if self.server is not None:
            return
        self._dir = Path(tempfile.mkdtemp(prefix="agentforge-shop-"))
        template = self._dir / "seed.sqlite"
        await asyncio.to_thread(build_db, template)
        self.app = ShopApp(db_path=self._dir / "shop.sqlite", template=template)
        self.app.reset()
        self.server = ShopServer(self.app, port=self.port).start()

    async def reset(self, task: dict[str, Any], session: BrowserSession, seed: int) -> str:
        if self.app is None:
            raise ConfigError("the shop is not started: call start() first")
        self.app.reset()
        context = session.page.context
        await context.clear_cookies()
        if task.get("require_login"):
            token = self.app.login_session(task.get("login_as", MAIN_CUSTOMER))
            await context.add_cookies([{"name": COOKIE, "value": token, "url": self.url}])
        await session.goto(substitute(task["start_url"], self.placeholders))
        return str(task["intent"])

    async def evaluate(self, task: dict[str, Any], session: BrowserSession,
                       answer: str) -> Evaluation:
        return await evaluate_task(task, answer=answer, page=session.page,
                                   placeholders=self.placeholders, judge=self.judge)

    async def close(self) -> None:
        server, self.server, self.app = self.server, None, None
        if server is not None:
            await asyncio.to_thread(server.stop)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
