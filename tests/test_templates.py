"""Message templates cannot hurt anyone: read-only, checked without evaluating, rendered on a budget."""

from __future__ import annotations

import copy
import shutil
import tracemalloc
from pathlib import Path

import pytest

from engine.errors import PlaybookLoadError
from engine.loader import load_project
from engine.templates import MAX_ITERATIONS, MAX_OUTPUT, TemplateRenderError, compile_part, render

VALID = Path(__file__).parent / "fixtures" / "valid"


def context() -> dict:
    return {
        "customer": {"id": "c-1", "name": "Ada", "email": "ada@example.com", "consent": {"email": False}},
        "event": {"name": "order.placed", "data": {"order_id": "A-1", "price": 1200}},
        "facts": {"open_tickets": 0}, "vars": {"team": "Support"}, "promises": {}, "stage": "sale",
        "now": None,
    }


def failure(template: str, name: str = "order_summary") -> str:
    """The message of the TemplateRenderError that rendering `template` raises."""
    with pytest.raises(TemplateRenderError) as info:
        render(template, context(), name)
    assert info.value.template == name
    return str(info.value)


def test_renders_subject_and_body() -> None:
    subject, body = render("Subject: Order {{ event.data.order_id }}\n\n"
                           "Hello {{ customer.name }}, {% for i in range(3) %}{{ i }}{% endfor %} "
                           "{{ [vars.team, customer.name]|join(' & ') }} {{ '%.2f'|format(event.data.price) }}",
                           context())
    assert (subject, body) == ("Order A-1", "Hello Ada, 012 Support & Ada 1200.00")


# ---------------------------------------------------------------- 1. read-only


@pytest.mark.parametrize("template", [
    "{{ customer.update({'email': 'mallory@example.com'}) }}",
    "{% set _ = customer.consent.update({'email': true}) %}",
    "{{ customer.consent.__setitem__('email', true) }}",
    "{{ customer.pop('email') }}{{ customer.setdefault('x', 1) }}",
    "{{ facts.clear() }}",
])
def test_a_template_cannot_change_the_state_it_reads(template: str) -> None:
    ctx = context()
    before = copy.deepcopy(ctx)
    with pytest.raises(TemplateRenderError):
        render(template, ctx, "sneaky")
    assert ctx == before


# ---------------------------------------------------------------- 3. nothing evaluated at load or compile


def _peak_mib(action) -> float:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def test_validate_does_not_evaluate_constant_expressions(tmp_path: Path) -> None:
    # Jinja's optimizer used to compute this string while checking (2.9 GB for 10**9).
    shutil.copytree(VALID, tmp_path / "p")
    (tmp_path / "p" / "templates" / "order_summary.txt").write_text(
        "Subject: {{ 'x' * 300000001 }}\n\n{{ 'y' * 300000002 }} {{ 'z'|center(300000003) }}\n"
        "{% if 'w' * 300000004 %}{% endif %}"
    )
    peak = _peak_mib(lambda: load_project(tmp_path / "p" / "lifecycle.yaml"))
    assert peak < 50


def test_compiling_for_render_evaluates_nothing() -> None:
    peak = _peak_mib(lambda: compile_part("{{ 'x' * 300000005 }}{{ ('y' * 300000006)|length }}"))
    assert peak < 20


# ---------------------------------------------------------------- 4. a budget per message


def test_output_over_budget_stops_with_a_clear_error() -> None:
    message = failure("{% for i in range(20) %}{{ 'x' * 5000 }}{% endfor %}")
    assert message == (f"template 'order_summary': body line 1: over budget: "
                       f"the message is longer than {MAX_OUTPUT} characters")


def test_text_built_inside_a_macro_counts_too() -> None:
    message = failure("{% macro page() %}{{ 'x' * 60000 }}{% endmacro %}"
                      "{% set big %}{% for i in range(10) %}{{ page() }}{% endfor %}{% endset %}ok")
    assert "the message is longer than" in message


def test_loop_iterations_over_budget() -> None:
    message = failure("{% for i in range(200) %}{% for j in range(100) %}{% endfor %}{% endfor %}")
    assert message.endswith(f"over budget: loops ran more than {MAX_ITERATIONS} times")


def test_recursive_loops_count_every_level() -> None:
    message = failure("{% for x in range(3) recursive %}{% if loop.depth < 15 %}"
                      "{{ loop(range(3)) }}{% endif %}{% endfor %}")
    assert "loops ran more than" in message


def test_exponential_macro_recursion_is_stopped() -> None:
    message = failure("{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}")
    assert "more than 10000 calls" in message


@pytest.mark.parametrize("template", [
    "{{ 'x' * 1000000000 }}",
    "{{ ['x'] * 1000000000 }}",
    "{{ 'x'|center(1000000000) }}",
    "{{ 'x'.rjust(1000000000) }}",
    "{{ '%01000000000d'|format(1) }}",
    "{{ '%01000000000d' % 1 }}",
    "{{ '%*d' % (1000000000, 1) }}",
    "{{ '{:>1000000000}'.format(1) }}",
    "{{ '{:>{}}'.format(1, 1000000000) }}",
    "{{ ('x' * 60000)|replace('x', 'yyyyyy') }}",
    "{{ ('x' * 60000).replace('', 'yy') }}",
    "{{ ('x' * 60000)|indent(60000) }}",
    "{{ [1, 2]|join('x' * 60000) }}x{{ range(9000)|join('x' * 60) }}",
    "{{ 7 ** 100000 }}",
    "{% set ns = namespace(s='x') %}{% for i in range(40) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "{% set ns = namespace(n=3) %}{% for i in range(40) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
    "{% set a = ['x' * 1000] * 60 %}{% set b = [a, a, a, a, a, a, a, a, a, a] %}{{ [b, b, b, b, b, b, b, b, b, b] }}",
    "{{ [[1, 2]]|sum(start=[]) }}",
    "{{ [1]|batch(1000000000, 0)|list }}",
])
def test_values_that_would_grow_past_the_budget_are_refused_before_they_are_built(template: str) -> None:
    peak = _peak_mib(lambda: failure(template))
    assert peak < 30


def test_nothing_random_in_a_message() -> None:
    # A workflow replays its history: the same message must come out every time.
    assert "No filter named 'random'" in failure("{{ [1, 2, 3]|random }}")
    assert "'lipsum' is undefined" in failure("{{ lipsum(3) }}")


# ---------------------------------------------------------------- every failure is one error type


@pytest.mark.parametrize(("template", "reason"), [
    ("Hello\n{{ event.data.discount + 1 }}", "body line 2: UndefinedError: 'dict object' has no attribute 'discount'"),
    ("{{ customer.name|round }}", "body line 1: TypeError: type str doesn't define __round__ method"),
    ("{{ event.data.price / facts.open_tickets }}", "body line 1: ZeroDivisionError: division by zero"),
    ("{{ customer.update({}) }}", "body line 1: SecurityError: access to attribute 'update' of 'dict' object is unsafe."),
    ("Subject: {{ ''.__class__.__mro__[1].__subclasses__() }}\n\nbody",
     "subject line 1: SecurityError: access to attribute '__class__' of 'str' object is unsafe."),
    ("{% include 'other.txt' %}", "body line 1: TypeError: no loader for this environment specified"),
    ("{{ x|nosuch }}", "body: TemplateAssertionError: No filter named 'nosuch'."),
])
def test_any_render_failure_is_a_template_render_error_naming_the_template(template: str, reason: str) -> None:
    assert failure(template) == f"template 'order_summary': {reason}"


# ---------------------------------------------------------------- 5. sandbox violations are load errors


@pytest.fixture
def lifecycle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    shutil.copytree(VALID, tmp_path / "p")
    return Path("p/lifecycle.yaml")


def load_errors(path: Path) -> list[str]:
    with pytest.raises(PlaybookLoadError) as info:
        load_project(path)
    return [str(error) for error in info.value.errors]


def test_sandbox_violations_seen_statically_are_located_load_errors(lifecycle: Path) -> None:
    (lifecycle.parent / "templates" / "check_in.txt").write_text(
        "Subject: Hi {{ customer.__class__ }}\n"
        "\n"
        "{{ ''.__class__.__mro__ }}\n"
        "{{ customer['_secret'] }} {{ customer.update({'email': 'x'}) }}\n"
        "{% include 'other.txt' %}{{ customer.name.mro() }} {{ customer.name.translate({}) }}\n"
    )
    assert load_errors(lifecycle) == [
        "p/templates/check_in.txt:1:25: '__class__' cannot be used in a template: names starting with '_' are internal",
        "p/templates/check_in.txt:3:7: '__class__' cannot be used in a template: names starting with '_' are internal",
        "p/templates/check_in.txt:3:17: '__mro__' cannot be used in a template: names starting with '_' are internal",
        "p/templates/check_in.txt:4:14: '_secret' cannot be used in a template: names starting with '_' are internal",
        "p/templates/check_in.txt:4:39: 'update(...)' would change data; a template only reads it",
        "p/templates/check_in.txt:5:1: a message template cannot include, import or extend another template",
        "p/templates/check_in.txt:5:43: 'mro' cannot be used in a template: it reaches outside the data",
        "p/templates/check_in.txt:5:69: 'translate(...)' cannot be used in a template",
    ]


def test_an_unknown_filter_is_a_load_error(lifecycle: Path) -> None:
    (lifecycle.parent / "templates" / "check_in.txt").write_text("Hello\n{{ customer.name|shout }}\n")
    assert load_errors(lifecycle) == ["p/templates/check_in.txt:2:1: template syntax error: No filter named 'shout'."]


def test_lint_does_not_evaluate_constant_expressions(tmp_path: Path) -> None:
    from engine.lint import lint_project

    shutil.copytree(VALID, tmp_path / "p")
    (tmp_path / "p" / "templates" / "order_summary.txt").write_text(
        "Hello {{ event.data.order_id }} {{ 'x' * 300000007 }}\n")
    project = load_project(tmp_path / "p" / "lifecycle.yaml")
    peak = _peak_mib(lambda: lint_project(project))
    assert peak < 50


def test_the_error_survives_a_copy_across_processes() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(TemplateRenderError("order_summary", "body line 1: over budget")))
    assert (error.template, error.reason, str(error)) == (
        "order_summary", "body line 1: over budget", "template 'order_summary': body line 1: over budget")


@pytest.mark.parametrize("template, reads", [
    ("Subject: {{ customer.name }}\nDue {{ promises.delivery_date.expected }}", {"customer", "promises"}),
    ("{% for name, p in promises.items() %}{{ name }}{% endfor %}", {"promises"}),
    ("{% macro m() %}{{ promises.x.state }}{% endmacro %}{{ m() }}", {"promises"}),
    ("{% set p = promises %}{{ p.x.state }}", {"promises"}),
    ("Subject: Hi {{ customer.name }}\nThanks, {{ vars.agent }}", {"customer", "vars"}),
    ("{% for p in vars.items %}{{ p }}{% endfor %}{{ 'promises' }}", {"vars"}),
])
def test_the_names_a_template_reads_are_found_wherever_it_reads_them(template: str, reads: set[str]) -> None:
    # The interpreter copies the promise ledger into a message's context only when it is read.
    from engine.templates import names_read
    found = names_read(template)
    assert found >= reads  # loop and `set` names may come too: more is harmless
    assert ("promises" in found) == ("promises" in reads)


def test_a_message_that_reads_a_promise_shows_it() -> None:
    from datetime import datetime, timezone

    from engine.context import template_context
    from engine.state import LifecycleState, PromiseEntry
    from engine.templates import names_read
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    state = LifecycleState(lifecycle_id="l", customer={"id": "c", "name": "Ada"}, stage="s", stage_since=now)
    state.promises["delivery_date"] = PromiseEntry(name="delivery_date", about="date", expected="2024-01-10",
                                                   made_by="s", made_at=now, stage="s")
    source = "Subject: For {{ customer.name }}\nBy {{ promises.delivery_date.expected }}"
    subject, body = render(source, template_context(state, None, now, names_read(source)))
    assert (subject, body) == ("For Ada", "By 2024-01-10")


@pytest.mark.parametrize("name", ["name", "missing", "items", "keys", "get", "update", "pop", "clear",
                                  "__class__", "__init__", "_private", "copy", "format_map", "fromkeys"])
def test_reading_a_dict_finds_what_the_sandbox_would(name: str) -> None:
    """A dict's attribute is read without Jinja's try-the-attribute-first detour: what a
    template gets (a key, a method, an undefined, an unsafe method refused) is unchanged."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from engine.templates import ENVIRONMENT

    data = {"name": "Ada", "_private": "hidden", "keys": "a key that a method shadows"}
    fast = ENVIRONMENT.getattr(data, name)
    sandbox = ImmutableSandboxedEnvironment.getattr(ENVIRONMENT, data, name)
    assert type(fast) is type(sandbox)
    if isinstance(sandbox, ENVIRONMENT.undefined):
        assert (fast._undefined_name, fast._undefined_hint, fast._undefined_exception) == \
            (sandbox._undefined_name, sandbox._undefined_hint, sandbox._undefined_exception)
    else:
        assert fast == sandbox
