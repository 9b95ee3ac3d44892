"""The deliver activity against a real outbox file, SMTP server and HTTP server."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities import DELIVERY_OPTIONS, RETRY_POLICY, Delivery
from activities.config import LifecycleSettings, SettingsError, parse_channels
from activities.outbox import Outbox
from activities.smtp import message_id_for
from devserver import free_port
from engine.state import Action, ActionResult

REPO = Path(__file__).resolve().parent.parent


def message(action_id: str = "cust-1/sale/1/summary", **fields: object) -> Action:
    """A message action as the interpreter would ask for it."""
    values: dict = {
        "id": action_id, "kind": "message", "customer_id": "cust-1", "stage": "sale",
        "step": "summary", "channel": "email", "to": "ada@example.com",
        "template": "promise_summary", "category": "service",
        "subject": "What we promised", "body": "Delivery on 10 March, price 1200 EUR.\n",
    }
    values.update(fields)
    return Action.model_validate(values)


def task(action_id: str = "cust-1/sale/1/brief") -> Action:
    """A task for a human role."""
    return Action(
        id=action_id, kind="task", customer_id="cust-1", stage="sale", step="brief",
        role="account_manager", title="Brief the installer", guideline="Repeat what was promised.",
    )


def settings(tmp_path: Path, **data: object) -> LifecycleSettings:
    """Settings with the state directory in tmp_path."""
    return LifecycleSettings.from_mapping({"state_dir": str(tmp_path), **data})


async def run(settings: LifecycleSettings, action: Action) -> ActionResult:
    """Run the activity as Temporal would (activity context and all)."""
    return await ActivityEnvironment().run(Delivery(settings).deliver, action)


async def failure(settings: LifecycleSettings, action: Action) -> ApplicationError:
    """Run the activity expecting an ApplicationError, and return it."""
    with pytest.raises(ApplicationError) as caught:
        await run(settings, action)
    return caught.value


def outbox_lines(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "outbox.jsonl").read_text().splitlines()]


# --- outbox -------------------------------------------------------------------------


async def test_outbox_records_the_action_as_one_json_line(tmp_path: Path) -> None:
    result = await run(settings(tmp_path), message())
    assert result.status == "done"
    [line] = outbox_lines(tmp_path)
    assert Action.model_validate(line) == message()
    assert line["recorded_at"]


async def test_outbox_holds_an_action_once_when_it_is_delivered_again(tmp_path: Path) -> None:
    first = await run(settings(tmp_path), message())
    again = await run(settings(tmp_path), message(body="changed on retry"))
    assert first.status == again.status == "done"
    assert "already" in again.detail
    assert [line["id"] for line in outbox_lines(tmp_path)] == [message().id]


async def test_outbox_holds_each_action_once_under_concurrent_deliveries(tmp_path: Path) -> None:
    actions = [message(f"cust-1/sale/1/m{n % 5}") for n in range(40)]
    await asyncio.gather(*(run(settings(tmp_path), action) for action in actions))
    ids = [line["id"] for line in outbox_lines(tmp_path)]
    assert sorted(ids) == sorted({action.id for action in actions})


_WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from activities.outbox import Outbox
    path, go, ids = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    outbox = Outbox(path)
    print("ready", flush=True)
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:  # start barrier
        time.sleep(0.001)
    print(sum(outbox.append(i, {"id": i, "pid": __import__("os").getpid()}) for i in ids))
    """
)


def test_outbox_holds_each_action_once_across_worker_processes(tmp_path: Path) -> None:
    path, go = tmp_path / "outbox.jsonl", tmp_path / "go"
    ids = [f"a{n}" for n in range(150)]
    # Same order in every process, so they race for the same id at the same moment.
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(path), str(go), *ids],
            cwd=REPO, stdout=subprocess.PIPE, text=True,
        )
        for _ in range(4)
    ]
    for writer in writers:  # all imported and waiting: release them together
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    go.touch()
    written = [int(writer.communicate(timeout=60)[0]) for writer in writers]
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(line["id"] for line in lines) == sorted(ids)
    assert sum(written) == len(ids)


def test_outbox_sees_what_another_process_appended(tmp_path: Path) -> None:
    # Two Outbox objects have separate id caches, like two worker processes.
    mine, theirs = Outbox(tmp_path / "outbox.jsonl"), Outbox(tmp_path / "outbox.jsonl")
    assert mine.append("a", {"id": "a"})
    assert theirs.append("b", {"id": "b"})
    assert not mine.append("b", {"id": "b"})
    assert not theirs.append("a", {"id": "a"})
    assert mine.ids() == {"a", "b"}


def test_outbox_closes_a_cut_off_line_before_appending(tmp_path: Path) -> None:
    path = tmp_path / "outbox.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b", "body": "cut of')
    outbox = Outbox(path)
    assert outbox.append("c", {"id": "c"})
    assert not outbox.append("a", {"id": "a"})
    last = path.read_text().splitlines()[-1]
    assert json.loads(last) == {"id": "c"}


_FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from activities.outbox import Outbox
    path = Path(sys.argv[1])
    outbox = Outbox(path)
    outbox.append("a", {"id": "a"})
    # The disk fills in the middle of the next line: a file size limit cuts the write the
    # same way (a short write, then an error), without a small file system to fill.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size + 20, hard))
    try:
        outbox.append("b", {"id": "b", "body": "x" * 100})
        print("written")
    except OSError as error:
        print("refused", error.errno)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # room again: the retry
    print(outbox.append("b", {"id": "b", "body": "x" * 100}))
    """
)


def test_outbox_leaves_no_half_line_when_the_disk_fills_mid_write(tmp_path: Path) -> None:
    # Half a line stayed in the file, and the retry appended the whole one after it: a reader of
    # the outbox found a line that is not JSON.
    path = tmp_path / "outbox.jsonl"
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, str(path)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["refused", "27", "True"]  # EFBIG, then written on retry
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b"]


# --- email --------------------------------------------------------------------------


def smtp_settings(tmp_path: Path, smtp_server, **smtp: object) -> LifecycleSettings:
    return settings(
        tmp_path,
        channels={"email": "smtp"},
        smtp={"host": smtp_server.host, "port": smtp_server.port, "sender": "care@shop.example", **smtp},
    )


async def test_email_is_sent_with_body_and_lifecycle_headers(tmp_path: Path, smtp_server) -> None:
    result = await run(smtp_settings(tmp_path, smtp_server), message())
    assert result.status == "done"
    [mail] = smtp_server.messages
    assert mail["To"] == "ada@example.com"
    assert mail["From"] == "care@shop.example"
    assert mail["Subject"] == "What we promised"
    assert mail["Idempotency-Key"] == mail["X-Lifecycle-Action"] == message().id
    assert mail["Message-ID"] == message_id_for(message(), "care@shop.example")
    assert mail["Message-ID"].endswith("@shop.example>")
    assert mail.get_content() == "Delivery on 10 March, price 1200 EUR.\n"
    assert smtp_server.envelopes[0].rcpt_tos == ["ada@example.com"]
    assert not (tmp_path / "outbox.jsonl").exists()


def test_email_message_id_is_the_same_on_retry_and_differs_between_actions() -> None:
    assert message_id_for(message("x/1"), "a@b.example") == message_id_for(message("x/1"), "a@b.example")
    assert message_id_for(message("x/1"), "a@b.example") != message_id_for(message("x/2"), "a@b.example")


async def test_email_to_a_refused_mailbox_is_a_permanent_failure(tmp_path: Path, smtp_server) -> None:
    smtp_server.refuse("ada@example.com", "550 5.1.1 no such user")
    error = await failure(smtp_settings(tmp_path, smtp_server), message())
    assert error.non_retryable
    assert "550" in str(error)
    assert smtp_server.messages == []


async def test_email_to_a_deferred_mailbox_is_retried(tmp_path: Path, smtp_server) -> None:
    smtp_server.refuse("ada@example.com", "450 4.2.1 mailbox busy, try later")
    error = await failure(smtp_settings(tmp_path, smtp_server), message())
    assert not error.non_retryable
    assert "450" in str(error)


async def test_email_when_the_relay_is_down_is_retried(tmp_path: Path) -> None:
    down = settings(tmp_path, channels={"email": "smtp"},
                    smtp={"host": "127.0.0.1", "port": free_port(), "timeout": 5})
    error = await failure(down, message())
    assert not error.non_retryable
    assert "unavailable" in str(error)


async def test_a_slow_reply_to_the_message_is_awaited_not_resent(tmp_path: Path, smtp_server) -> None:
    # The relay takes 1.5 s to answer the final "."; commands may take 0.5 s, the message 5 s
    # (RFC 5321's 5 and 10 minutes, scaled down). One attempt, one message, no retry needed.
    smtp_server.data_delay = 1.5
    result = await run(smtp_settings(tmp_path, smtp_server, timeout=0.5, data_timeout=5), message())
    assert result.status == "done"
    assert len(smtp_server.messages) == 1


async def test_a_reply_slower_than_the_data_timeout_is_retried_under_the_same_message_id(
    tmp_path: Path, smtp_server
) -> None:
    # Past the data timeout the relay may already hold the message: the retry sends it again,
    # and the copies carry one Message-ID, which mail stores collapse (at-least-once).
    smtp_server.data_delay = 1.0
    impatient = smtp_settings(tmp_path, smtp_server, timeout=5, data_timeout=0.3)
    error = await failure(impatient, message())
    assert not error.non_retryable and "unavailable" in str(error)
    smtp_server.data_delay = 0
    assert (await run(impatient, message())).status == "done"
    await asyncio.sleep(1.0)  # the first answer is still on its way
    ids = {mail["Message-ID"] for mail in smtp_server.messages}
    assert len(smtp_server.messages) == 2 and ids == {message_id_for(message(), "care@shop.example")}


def test_smtp_timeouts_default_to_rfc_5321_and_one_attempt_outlasts_them() -> None:
    smtp = LifecycleSettings.from_env({"LIFECYCLE_CHANNELS": "email=smtp", "LIFECYCLE_SMTP_HOST": "relay"}).smtp
    assert (smtp.timeout, smtp.data_timeout) == (300, 600)
    # Greeting, EHLO, MAIL, RCPT at the command timeout, then the message: all inside one attempt.
    assert DELIVERY_OPTIONS["start_to_close_timeout"] > timedelta(seconds=4 * smtp.timeout + smtp.data_timeout)
    custom = LifecycleSettings.from_env({"LIFECYCLE_CHANNELS": "email=smtp", "LIFECYCLE_SMTP_HOST": "relay",
                                         "LIFECYCLE_SMTP_DATA_TIMEOUT": "900"}).smtp
    assert custom.data_timeout == 900
    with pytest.raises(SettingsError, match="^LIFECYCLE_SMTP_DATA_TIMEOUT: "):
        LifecycleSettings.from_env({"LIFECYCLE_SMTP_DATA_TIMEOUT": "-1"})


async def test_email_without_an_address_is_a_permanent_failure(tmp_path: Path, smtp_server) -> None:
    error = await failure(smtp_settings(tmp_path, smtp_server), message(to=None))
    assert error.non_retryable
    assert smtp_server.messages == []


# --- webhook ------------------------------------------------------------------------


def webhook_settings(tmp_path: Path, http_receiver, **data: object) -> LifecycleSettings:
    return settings(tmp_path, webhook={"url": http_receiver.url, "token": "s3cret"}, **data)


async def test_webhook_posts_the_action_with_its_idempotency_key(tmp_path: Path, http_receiver) -> None:
    result = await run(webhook_settings(tmp_path, http_receiver, channels={"sms": "webhook"}),
                       message(channel="sms", to="+4915112345678"))
    assert result.status == "done"
    [request] = http_receiver.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["Idempotency-Key"] == message().id
    assert request.headers["Authorization"] == "Bearer s3cret"
    assert Action.model_validate(request.json()) == message(channel="sms", to="+4915112345678")


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
async def test_webhook_answers_that_mean_not_now_are_retried(
    tmp_path: Path, http_receiver, status: int
) -> None:
    http_receiver.respond(status)
    error = await failure(webhook_settings(tmp_path, http_receiver, tasks="webhook"), task())
    assert not error.non_retryable
    assert str(status) in str(error)


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_webhook_client_errors_are_permanent(tmp_path: Path, http_receiver, status: int) -> None:
    http_receiver.respond(status)
    error = await failure(webhook_settings(tmp_path, http_receiver, tasks="webhook"), task())
    assert error.non_retryable


async def test_webhook_retry_after_sets_the_next_retry_delay(tmp_path: Path, http_receiver) -> None:
    http_receiver.respond(429, headers={"Retry-After": "7"})
    error = await failure(webhook_settings(tmp_path, http_receiver, tasks="webhook"), task())
    assert error.next_retry_delay == timedelta(seconds=7)


async def test_webhook_that_is_unreachable_is_retried(tmp_path: Path) -> None:
    unreachable = settings(tmp_path, tasks="webhook",
                           webhook={"url": f"http://127.0.0.1:{free_port()}/hook", "timeout": 5})
    error = await failure(unreachable, task())
    assert not error.non_retryable


# --- routing ------------------------------------------------------------------------


async def test_tasks_go_to_the_tasks_implementation(tmp_path: Path, http_receiver, smtp_server) -> None:
    routed = settings(
        tmp_path, tasks="webhook", channels={"email": "smtp"},
        webhook={"url": http_receiver.url},
        smtp={"host": smtp_server.host, "port": smtp_server.port},
    )
    await run(routed, task())
    assert [r.json()["kind"] for r in http_receiver.requests] == ["task"]
    assert smtp_server.messages == []


async def test_a_policy_notice_about_an_email_never_goes_to_smtp(
        tmp_path: Path, http_receiver, smtp_server) -> None:
    notice = Action(id="cust-1/sale/1/offer/suppressed", kind="notice", customer_id="cust-1", stage="sale",
                    step="offer", channel="email", template="offer", category="marketing",
                    title="Message 'offer' suppressed: no consent for marketing (email)",
                    guideline="suppressed: no consent for marketing")
    by_email = {"email": "smtp"}
    smtp = {"host": smtp_server.host, "port": smtp_server.port}
    await run(settings(tmp_path, channels=by_email, smtp=smtp), notice)
    assert [(line["kind"], line["title"]) for line in outbox_lines(tmp_path)] == [("notice", notice.title)]
    await run(settings(tmp_path, tasks="webhook", channels=by_email, smtp=smtp,
                       webhook={"url": http_receiver.url}), notice)
    assert [Action.model_validate(r.json()) for r in http_receiver.requests] == [notice]
    assert smtp_server.messages == []


async def test_a_channel_not_configured_goes_to_the_outbox(tmp_path: Path, smtp_server) -> None:
    await run(smtp_settings(tmp_path, smtp_server), message(channel="letter", to="1 Main St"))
    assert [line["channel"] for line in outbox_lines(tmp_path)] == ["letter"]
    assert smtp_server.messages == []


async def test_deliver_reads_its_routing_from_the_environment(
    tmp_path: Path, smtp_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFECYCLE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("LIFECYCLE_CHANNELS", "email=smtp, sms=outbox")
    monkeypatch.setenv("LIFECYCLE_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("LIFECYCLE_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("LIFECYCLE_SMTP_STARTTLS", "auto")
    deliver = Delivery(LifecycleSettings.from_env()).deliver
    await ActivityEnvironment().run(deliver, message())
    await ActivityEnvironment().run(deliver, message("cust-1/sale/1/sms", channel="sms"))
    assert len(smtp_server.messages) == 1
    assert [line["id"] for line in outbox_lines(tmp_path)] == ["cust-1/sale/1/sms"]


# --- configuration ------------------------------------------------------------------


def test_channels_are_read_as_channel_equals_implementation() -> None:
    assert parse_channels("email=smtp, sms = webhook,,letter=outbox") == {
        "email": "smtp", "sms": "webhook", "letter": "outbox",
    }


@pytest.mark.parametrize(
    ("environ", "message_start"),
    [
        ({"LIFECYCLE_CHANNELS": "email=pigeon"}, "LIFECYCLE_CHANNELS: unknown implementation 'pigeon'"),
        ({"LIFECYCLE_CHANNELS": "email"}, "LIFECYCLE_CHANNELS: 'email' is not channel=implementation"),
        ({"LIFECYCLE_CHANNELS": "email=smtp"}, "LIFECYCLE_SMTP_HOST is required"),
        ({"LIFECYCLE_TASKS": "webhook"}, "LIFECYCLE_WEBHOOK_URL is required"),
        ({"LIFECYCLE_TASKS": "smtp"}, "LIFECYCLE_TASKS: "),
        ({"LIFECYCLE_SMTP_PORT": "twenty-five"}, "LIFECYCLE_SMTP_PORT: "),
        ({"LIFECYCLE_SMTP_STARTTLS": "maybe"}, "LIFECYCLE_SMTP_STARTTLS: "),
    ],
)
def test_a_wrong_setting_is_reported_in_one_line_naming_the_variable(
    environ: dict[str, str], message_start: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        LifecycleSettings.from_env(environ)
    assert str(caught.value).startswith(message_start)
    assert "\n" not in str(caught.value)


def test_defaults_send_everything_to_the_outbox_in_dot_lifecycle() -> None:
    defaults = LifecycleSettings.from_env({})
    assert defaults.outbox_path == Path(".lifecycle/outbox.jsonl")
    assert defaults.task_queue == "lifecycle"
    assert defaults.implementation_for("message", "email") == "outbox"
    assert defaults.implementation_for("task", None) == "outbox"


def test_the_retry_policy_backs_off_exponentially_within_a_deadline() -> None:
    assert RETRY_POLICY.initial_interval == timedelta(seconds=1)
    assert RETRY_POLICY.backoff_coefficient == 2.0
    assert RETRY_POLICY.maximum_interval == timedelta(minutes=1)
    assert DELIVERY_OPTIONS["retry_policy"] is RETRY_POLICY
    assert DELIVERY_OPTIONS["schedule_to_close_timeout"] >= timedelta(hours=1)
