#!/usr/bin/env python3
"""Render deploy/nginx.conf for a cluster: ``render_nginx.py --server-name H --node HOST:PORT ...``.

Standard library only, so it runs on the load balancer without the project installed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).with_name("nginx.conf")
_NODE = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_SAFE = re.compile(r"^[^\s;{}'\"]+$")


def render(
    template: str,
    *,
    server_name: str,
    nodes: list[str],
    certificate: str,
    certificate_key: str,
    http_listen: str = "80",
    https_listen: str = "443",
) -> str:
    """Fill every ``{{placeholder}}``; refuse values that could break out of a directive."""
    if not nodes:
        raise ValueError("at least one --node HOST:PORT is required")
    for node in nodes:
        if not _NODE.fullmatch(node):
            raise ValueError(f"not HOST:PORT: {node!r}")
    values = {
        "server_name": server_name,
        "ssl_certificate": certificate,
        "ssl_certificate_key": certificate_key,
        "http_listen": http_listen,
        "https_listen": https_listen,
    }
    for name, value in values.items():
        parts = value.split() if name == "server_name" else [value]  # several names, space-separated
        if not parts or not all(_SAFE.fullmatch(p) for p in parts):
            raise ValueError(f"unsafe value for {name}: {value!r}")
    values["upstream_servers"] = "\n".join(
        f"    server {node} max_fails=3 fail_timeout=10s;" for node in nodes
    )
    out = template
    for name, value in values.items():
        out = out.replace("{{" + name + "}}", value)
    left = re.findall(r"\{\{[a-z_]+\}\}", out)
    if left:
        raise ValueError(f"unfilled placeholders: {sorted(set(left))}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server-name", required=True)
    parser.add_argument("--node", action="append", required=True, help="HOST:PORT of a node (repeat)")
    parser.add_argument("--certificate", required=True)
    parser.add_argument("--certificate-key", required=True)
    parser.add_argument("--http-listen", default="80")
    parser.add_argument("--https-listen", default="443")
    parser.add_argument("--template", default=str(TEMPLATE))
    args = parser.parse_args(argv)
    try:
        text = render(
            Path(args.template).read_text(),
            server_name=args.server_name,
            nodes=args.node,
            certificate=args.certificate,
            certificate_key=args.certificate_key,
            http_listen=args.http_listen,
            https_listen=args.https_listen,
        )
    except ValueError as exc:
        print(f"render_nginx: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
