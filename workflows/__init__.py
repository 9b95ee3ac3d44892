"""The Temporal shell around the engine: the customer-lifecycle workflow and its client."""

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.lifecycle import CustomerLifecycle

CUSTOMER_WORKFLOWS = [CustomerLifecycle]

# The engine's libraries are deterministic and import submodules lazily (Jinja compiles a
# template on first use, `holidays` a country's rules the first time its calendar is used);
# passing them through keeps one copy, loaded outside the sandbox.
# The shell itself (`workflows`, with `analytics.stream`'s message types) is passed through
# too: it keeps no state between runs (the workflow's state lives on its instance), so the
# sandbox's fresh import of it for every run bought nothing but time. That import, and the
# sandbox's guarded `datetime` in the shell's hot path, were most of a fifth of the worker's
# instructions per lifecycle (bench/temporal.py's lifecycle, replayed). Determinism of the
# shell, as of the engine, is held by tests/test_workflow_determinism.py and by replaying
# recorded histories (tests/test_workflow.py), not by the sandbox.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "workflows", "analytics", "engine", "jinja2", "markupsafe", "cel_expr_python", "pydantic", "pydantic_core",
        "holidays",
    )
)
