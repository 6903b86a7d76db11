"""``python -m bench.mint --username U --count K``: open K sessions for U through the core and print
their tokens as JSON. The fallback when no login surface answers yet (the app surface's
``POST /app/auth/login`` is the normal way); the tokens are the same kind any login mints.
"""

from __future__ import annotations

import argparse
import asyncio
import json


async def mint(username: str, count: int) -> list[dict[str, str]]:
    from authgate.config import Settings
    from authgate.container import build
    from authgate.core.model import RequestContext

    container = await build(Settings())
    core = container.core
    try:
        out = []
        async with core.store.transaction() as tx:
            user = await tx.users.get_by_username(username)
            if user is None:
                raise SystemExit(f"no user {username}")
            for _ in range(count):
                issued = await core.sessions.start(tx, user, RequestContext(surface="bench"))
                out.append({"accessToken": issued.access_token, "refreshToken": issued.refresh_token})
        return out
    finally:
        await container.close()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mint")
    parser.add_argument("--username", required=True)
    parser.add_argument("--count", type=int, default=1)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(mint(args.username, args.count))))


if __name__ == "__main__":
    main()
