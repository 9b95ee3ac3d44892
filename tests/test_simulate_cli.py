"""`lifecycle simulate`: strict scenario files, a horizon, a non-zero exit on rejected events,
and one readable line for every failure, never a traceback."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest
from click.testing import CliRunner, Result

from cli.simulate import simulate_command
from engine.casefile import CaseError, load_case

ROOT = Path(__file__).parent.parent
BOMB = "".join(f"{x}: &{x} [{', '.join([f'*{p}'] * 9)}]\n" for p, x in zip("abcdefg", "bcdefgh"))
BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + BOMB


@pytest.fixture
def loop(tmp_path: Path) -> Path:
    """A lifecycle whose two stages hand the customer to each other every year, for ever."""
    folder = tmp_path / "loop"
    folder.mkdir()
    files = {
        "lifecycle.yaml": """\
            lifecycle: loop
            channels: {email: {contact: email}}
            roles: {account_manager: Owns it.}
            events:
              order.placed: {starts_lifecycle: true}
              customer.lost: {}
            facts:
              count: {type: int, initial: 0}
            initial_stage: a
            stages:
              a: {playbook: a.yaml}
              b: {playbook: b.yaml}
              lost: {terminal: true}
            transitions:
              - {from: '*', on: customer.lost, to: lost}
            """,
        "a.yaml": "playbook: a\nsteps:\n  - {kind: wait, duration: 52w}\n  - {kind: goto, stage: b}\n",
        "b.yaml": "playbook: b\nsteps:\n  - {kind: wait, duration: 52w}\n  - {kind: goto, stage: a}\n",
    }
    for name, text in files.items():
        (folder / name).write_text(dedent(text))
    return folder


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(dedent(text))
    return str(path)


def run(*args: str) -> Result:
    result = CliRunner().invoke(simulate_command, [str(arg) for arg in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def started(tmp_path: Path) -> str:
    return write(tmp_path, "events.yaml", "events:\n  - {at: 0d, event: order.placed}\n")


def test_the_bundled_example_runs_to_its_end() -> None:
    result = run(ROOT / "playbooks", "--customer", ROOT / "examples/customer.yaml",
                 "--events", ROOT / "examples/events.yaml")
    assert result.exit_code == 0
    assert "-- ended: closed" in result.stdout


def test_a_lifecycle_that_never_ends_stops_at_ten_years_and_says_so(loop: Path, tmp_path: Path) -> None:
    result = run(loop, "--events", started(tmp_path))
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1].startswith("-- now in stage a at 2036-01-06;")
    assert result.stderr == ("-- stopped at 2036-01-06, ten years after the first event; "
                             "pass --until DATE|DURATION to see further\n")


@pytest.mark.parametrize(("until", "last_entry"), [("2028-06-01", "2028-01-03"), ("104w", "2028-01-03"),
                                                   ("P1W", "2026-01-05")])
def test_until_takes_a_date_or_a_duration_after_the_first_event(loop: Path, tmp_path: Path,
                                                                 until: str, last_entry: str) -> None:
    result = run(loop, "--events", started(tmp_path), "--until", until)
    assert result.exit_code == 0
    entries = [line for line in result.stdout.splitlines() if "stage_entered" in line]
    assert entries[-1].startswith(last_entry)
    assert result.stderr == ""


def test_until_before_the_first_event_is_refused(loop: Path, tmp_path: Path) -> None:
    # The first event would still run and the timeline end "now ... at" a date before it.
    events = write(tmp_path, "events.yaml", "start: 2026-03-02T09:00:00Z\nevents:\n  - {at: 0d, event: order.placed}\n")
    result = run(loop, "--events", events, "--until", "2026-02-01")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == ("error: --until: 2026-02-01 00:00 is before the first event (2026-03-02 09:00); "
                             "nothing would be simulated\n")


def test_until_that_is_neither_a_date_nor_a_duration(loop: Path, tmp_path: Path) -> None:
    result = run(loop, "--events", started(tmp_path), "--until", "2y")
    assert result.exit_code == 1
    assert result.stderr == ("error: --until: '2y' is neither a date (2027-06-01) nor a duration "
                             "(examples: 30m, 2d, 1w, 1d12h, P14D)\n")


def test_until_at_the_end_of_time_holds_the_customer_without_a_traceback(loop: Path, tmp_path: Path) -> None:
    result = run(loop, "--events", started(tmp_path), "--until", "9999-12-01")
    assert result.exit_code == 1
    assert "incident        held: expression failure: a wait of 364 days, 0:00:00 goes past the year 9999" \
        in result.stdout
    assert result.stderr.startswith("error: the customer is held at step ")
    assert "Traceback" not in result.stdout + result.stderr


def test_a_rejected_event_is_printed_and_fails_the_command(loop: Path, tmp_path: Path) -> None:
    events = write(tmp_path, "events.yaml", """\
        events:
          - {at: 0d, event: order.placed}
          - {at: 2d, event: order.shipped}
        """)
    result = run(loop, "--events", events, "--until", "30d")
    assert result.exit_code == 1
    assert "!! 2026-01-07 09:00 order.shipped rejected: unknown event 'order.shipped'" in result.stdout
    assert result.stderr == "error: 1 event(s) of the scenario were rejected\n"


def test_rejected_events_fail_the_json_output_too(loop: Path, tmp_path: Path) -> None:
    events = write(tmp_path, "events.yaml", "events:\n  - {at: 0d, event: order.placed}\n  - {at: 1d, event: nope}\n")
    result = run(loop, "--events", events, "--json", "--until", "30d")
    assert result.exit_code == 1
    assert '"reason": "unknown event \'nope\'"' in result.stdout


def test_an_alias_bomb_in_the_events_file_is_a_located_error(loop: Path, tmp_path: Path) -> None:
    events = write(tmp_path, "events.yaml", BOMB + "events: [*h]\n")
    result = run(loop, "--events", events)
    assert (result.exit_code, result.stderr) == (1, f"{events}:1:1: the file expands to more than 100000 values\n")


def test_python_tags_in_the_customer_file_are_refused(loop: Path, tmp_path: Path) -> None:
    customer = write(tmp_path, "customer.yaml", "id: c-1\nname: !!python/object/apply:os.system [echo hi]\n")
    result = run(loop, "--events", started(tmp_path), "--customer", customer)
    assert (result.exit_code, result.stderr) == (
        1, f"{customer}:2:7: unsupported YAML tag '!!python/object/apply:os.system'\n")


@pytest.mark.parametrize("line, message", [
    ("favourite_colour: red", "'customer' has no field 'favourite_colour'"),
    ("timezone: Europe/Londn", "field 'customer.timezone': unknown time zone 'Europe/Londn' (an IANA name such as "
                               "Europe/Berlin)"),
    ("consent: [email]", "field 'customer.consent' must be a map, got list"),
])
def test_a_customer_field_the_lifecycle_refuses_is_located_in_the_customer_file(loop: Path, tmp_path: Path,
                                                                               line: str, message: str) -> None:
    customer = write(tmp_path, "customer.yaml", f"id: c-1\n{line}\n")
    result = run(loop, "--events", started(tmp_path), "--customer", customer)
    column = line.index(":") + 3
    assert (result.exit_code, result.stderr) == (1, f"{customer}:2:{column}: {message}\n")


def test_scenario_mistakes_are_located(loop: Path, tmp_path: Path) -> None:
    events = write(tmp_path, "events.yaml", """\
        events:
          - {at: 0d, event: order.placed}
          - {at: 3 dayz, event: order.placed}
        """)
    result = run(loop, "--events", events)
    assert (result.exit_code, result.stderr) == (
        1, f"{events}:3:10: 'at' '3 dayz' is not a duration (examples: 30m, 2d, 1w, 1d12h, P14D)\n")


def test_setting_an_int_fact_to_text_never_prints_a_traceback(loop: Path, tmp_path: Path) -> None:
    (loop / "a.yaml").write_text(dedent("""\
        playbook: a
        steps:
          - {kind: set, fact: count, value: "'many'"}
          - {kind: if, when: facts.count > 1, then: [{kind: goto, stage: b}]}
          - {kind: set, fact: count, value: facts.count + 1}
          - {kind: wait, duration: 52w}
        """))
    result = run(loop, "--events", started(tmp_path), "--until", "10d")
    # Expressions are type-checked at load: the playbook is refused, located, before it runs.
    assert result.exit_code == 1
    assert "a.yaml:3:38: fact 'count' must be an int, but this expression is a string" in result.output


def test_an_alias_bomb_in_a_test_case_is_a_located_error(tmp_path: Path) -> None:
    case = Path(write(tmp_path, "case.yaml", BOMB + "name: bomb\nevents: [*h]\nexpect: {ended: closed}\n"))
    with pytest.raises(CaseError, match=r"case.yaml:1:1: the file expands to more than 100000 values$"):
        load_case(case)


def test_a_test_case_of_a_lifecycle_that_never_ends_stops_at_the_horizon(loop: Path) -> None:
    from engine.casefile import run_cases

    (loop / "tests").mkdir()
    case = loop / "tests" / "forever.yaml"
    case.write_text("name: forever\nevents: [{at: 0d, event: order.placed}]\nexpect: {ended: null, stages: {includes: [b]}}\n")
    [result] = run_cases([case])
    assert result.failures == []
    assert result.timeline is not None and result.timeline.stopped_at is not None
    assert len(result.timeline.stages()) == 11  # the start, then one entry every 52 weeks
