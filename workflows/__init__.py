"""The Temporal shell around the engine: the customer-lifecycle workflow and its client."""

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from workflows.lifecycle import CustomerLifecycle

CUSTOMER_WORKFLOWS = [CustomerLifecycle]

# For workflows that run in the sandbox (CustomerLifecycle does not: see its docstring).
# The engine's libraries are deterministic and import submodules lazily (Jinja compiles a
# template on first use, `holidays` a country's rules the first time its calendar is used);
# passing them through keeps one copy, loaded outside the sandbox.
WORKFLOW_RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "engine", "jinja2", "markupsafe", "cel_expr_python", "pydantic", "pydantic_core", "holidays",
    )
)
