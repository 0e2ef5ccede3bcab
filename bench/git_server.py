"""Serve bare repositories over smart HTTP on loopback, as a process of its own:
`git http-backend` behind a small threaded server (tests/githttp.py). Prints its port.

    python bench/git_server.py ROOT
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.githttp import GitHttpServer  # noqa: E402


def main() -> None:
    GitHttpServer.request_queue_size = 256  # a burst of checks must not be refused
    server = GitHttpServer(Path(sys.argv[1]), passwords=None)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
