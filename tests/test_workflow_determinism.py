"""The customer lifecycle runs outside the Temporal sandbox (`CustomerLifecycle`'s docstring), so the
sandbox no longer refuses a clock, randomness or I/O in its shell: this test does, and replaying
recorded histories (tests/test_workflow.py) checks the rest."""

from __future__ import annotations

import ast
from pathlib import Path

WORKFLOWS = Path(__file__).resolve().parent.parent / "workflows"
WORKFLOW_CODE = ["lifecycle.py", "contract.py", "policy.py"]  # client.py runs in callers, not in workflows
REFUSED_MODULES = {"os", "random", "secrets", "socket", "subprocess", "threading", "time", "uuid", "httpx", "aiosmtplib"}
REFUSED_CALLS = {"datetime.now", "datetime.utcnow", "datetime.today", "date.today", "datetime.datetime.now",
                 "asyncio.sleep", "open"}


def refusals(path: Path) -> list[str]:
    """What in a file the sandbox would have refused, one line each."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [f"imports {a.name}" for a in node.names if a.name.split(".")[0] in REFUSED_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in REFUSED_MODULES:
            found.append(f"imports from {node.module}")
        elif isinstance(node, ast.Call) and ast.unparse(node.func) in REFUSED_CALLS:
            found.append(f"calls {ast.unparse(node.func)}()")
    return found


def test_the_workflow_shell_reads_no_clock_randomness_or_io() -> None:
    assert {name: refusals(WORKFLOWS / name) for name in WORKFLOW_CODE} == {name: [] for name in WORKFLOW_CODE}


def test_the_check_finds_what_the_sandbox_used_to_refuse(tmp_path: Path) -> None:
    careless = tmp_path / "careless.py"
    careless.write_text("import uuid\nfrom datetime import datetime\n\ndef f():\n"
                        "    return datetime.now(), uuid.uuid4(), open('x'), workflow.now()\n")
    assert refusals(careless) == ["imports uuid", "calls datetime.now()", "calls open()"]
