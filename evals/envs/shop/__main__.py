"""Serve the shop for a human: `python -m agentforge.evals.envs.shop --port 8000`."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from agentforge.evals.envs.shop.data import CUSTOMERS, build_db
from agentforge.evals.envs.shop.server import ShopApp, ShopServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m agentforge.evals.envs.shop",
                                     description="Serve the seeded shop on 127.0.0.1.")
    parser.add_argument("--port", type=int, default=8000, help="port (0 = any free port)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="agentforge-shop-") as tmp:
        template = Path(tmp) / "seed.sqlite"
        build_db(template)
        app = ShopApp(db_path=Path(tmp) / "shop.sqlite", template=template)
        app.reset()
        server = ShopServer(app, port=args.port).start()
        logins = ", ".join(f"{c[0]} / {c[1]}" for c in CUSTOMERS)
        print(f"One Stop Market on {server.url} (customers: {logins}); Ctrl-C stops it")
        try:
            server.wait()
        except KeyboardInterrupt:
            pass
        finally:
            server.stop()


if __name__ == "__main__":
    main()
