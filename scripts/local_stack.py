"""Entry point of the local-process stack (``make up-local`` / ``make down-local``).

docker-compose.yml's services as local processes: deploy/topology.py translates the
compose file, deploy/local_stack.py runs the result. ``python scripts/local_stack.py
--help`` lists the commands; the names below are re-exported for Python callers.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)  # run as a script: make the repository's deploy/ importable

from deploy.local_stack import (  # noqa: E402
    Stack,
    load_config,
    main,
    stack_status,
    start_stack,
    stop_stack,
    summary,
)
from deploy.topology import LocalStackError, StackConfig  # noqa: E402

__all__ = [
    "LocalStackError",
    "Stack",
    "StackConfig",
    "load_config",
    "main",
    "stack_status",
    "start_stack",
    "stop_stack",
    "summary",
]

if __name__ == "__main__":
    sys.exit(main())
