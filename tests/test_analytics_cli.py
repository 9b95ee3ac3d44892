"""`lifecycle backtest`, `report`, `rank`, `export`: a small seeded population end to end."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from analytics.backtest import population_member
from cli.main import main

ROOT = Path(__file__).parent.parent
PLAYBOOKS = ROOT / "playbooks"


def run(*args: str) -> Result:
    return CliRunner().invoke(main, [str(arg) for arg in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def backtest(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("backtest") / "a.duckdb"
    result = run("backtest", PLAYBOOKS, "--population", 60, "--seed", 7, "--out", out, "--processes", 2)
    assert result.exit_code == 0, result.output
    assert "60 customer-years" in result.output and "customer-years/s" in result.output
    return out


def test_the_population_is_the_same_for_the_same_seed():
    declared = ({"segment"}, {"order.placed", "order.delivered", "survey.answered", "ticket.opened"})
    one = population_member(5, 7, *declared)
    assert one == population_member(5, 7, *declared)
    assert one != population_member(5, 8, *declared)
    customer, events = one
    assert events[0].event.name == "order.placed" and customer["segment"] in {"consumer", "small_business",
                                                                              "enterprise"}
    assert {item.event.name for item in events} <= declared[1]  # only what the lifecycle declares


def test_a_backtest_run_twice_with_its_seed_counts_once(backtest: Path, tmp_path: Path):
    count = duckdb.connect(str(backtest), read_only=True).execute("SELECT count(*) FROM records").fetchone()[0]
    copy = tmp_path / "copy.duckdb"
    shutil.copy(backtest, copy)
    assert run("backtest", PLAYBOOKS, "--population", 60, "--seed", 7, "--out", copy,
               "--processes", 1).exit_code == 0
    again = duckdb.connect(str(copy), read_only=True)
    assert again.execute("SELECT count(*) FROM records").fetchone()[0] == count
    assert again.execute("SELECT count(DISTINCT customer_id) FROM records").fetchone()[0] == 60


def test_report_as_json_answers_every_question(backtest: Path):
    result = run("report", "--store", backtest, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["summary"]["customers"] == 60
    assert report["funnel"][0]["stage"] == "set_expectations" and report["funnel"][0]["customers"] == 60
    assert report["nps"][0]["answers"] > 0
    assert sum(row["made"] for row in report["promises_by_kind"]) > 0
    assert report["revenue"]["orders"] >= 60
    enterprise = json.loads(run("report", "--store", backtest, "--json", "--segment", "enterprise").output)
    assert 0 < enterprise["summary"]["customers"] < 60


def test_report_in_the_terminal_has_every_section(backtest: Path):
    output = run("report", "--store", backtest).output
    for title in ("Funnel", "Time in stage", "Promises by kind", "After a broken promise", "NPS by cohort month",
                  "Task SLA by role", "Messages by channel and category", "Revenue and lifetime value",
                  "Customers most at risk"):
        assert title in output


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.figures: list[str] = []
        self.svgs = 0
        self.shapes = 0
        self.references: list[str] = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "figure":
            self.figures.append(attributes.get("id", ""))
        if tag == "svg":
            self.svgs += 1
        if tag in ("rect", "path", "circle"):
            self.shapes += 1
        for name in ("src", "href", "xlink:href", "action"):
            if name in attributes:
                self.references.append(f"{tag} {name}={attributes[name]}")
        if tag in ("script", "link", "img", "iframe", "object", "embed"):
            self.references.append(tag)


def test_the_html_report_is_one_page_with_its_charts_and_nothing_external(backtest: Path, tmp_path: Path):
    page_file = tmp_path / "report.html"
    result = run("report", "--store", backtest, "--html", page_file)
    assert result.exit_code == 0, result.output
    text = page_file.read_text()
    page = Page()
    page.feed(text)
    assert page.figures == ["chart-funnel", "chart-time-in-stage", "chart-promise-outcomes", "chart-nps-trend"]
    assert page.svgs == 4 and page.shapes > 10
    assert page.references == []
    assert "http" not in text and "url(" not in text and "@import" not in text


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser"))
                    and not os.environ.get("LIFECYCLE_REQUIRE_BROWSER"),
                    reason="Debian's chromium is not installed (make browser installs it as root)")
def test_the_html_report_renders_in_headless_chromium_offline(backtest: Path, tmp_path: Path):
    page_file = tmp_path / "report.html"
    run("report", "--store", backtest, "--html", page_file)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           "--proxy-server=127.0.0.1:9", page_file.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "chart-nps-trend" in done.stdout and "<svg" in done.stdout


def test_rank_by_value_and_by_risk(backtest: Path):
    by_value = json.loads(run("rank", "--store", backtest, "--by", "value", "--top", 5, "--json").output)
    assert len(by_value) == 5
    assert [row["revenue"] for row in by_value] == sorted((row["revenue"] for row in by_value), reverse=True)
    by_risk = json.loads(run("rank", "--store", backtest, "--by", "risk", "--top", 3, "--json").output)
    assert [row["risk"] for row in by_risk] == sorted((row["risk"] for row in by_risk), reverse=True)
    assert "Customers by risk" in run("rank", "--store", backtest, "--by", "risk").output


def test_rank_and_report_into_a_pipe_cut_no_customer_id_nor_amount(backtest: Path, monkeypatch):
    # Rich takes a pipe or a file for 80 columns: the ranking printed "bt-000…" and "55,170…".
    monkeypatch.delenv("COLUMNS", raising=False)
    rows = json.loads(run("rank", "--store", backtest, "--by", "risk", "--top", 5, "--json").output)
    output = run("rank", "--store", backtest, "--by", "risk", "--top", 5).output
    assert "…" not in output
    for row in rows:
        line = next(line for line in output.splitlines() if f" {row['customer_id']} " in line)
        assert f" {row['open_tickets']} " in line
    assert "…" not in run("report", "--store", backtest).output


def test_compare_two_backtests_side_by_side(backtest: Path, tmp_path: Path):
    other = tmp_path / "b.duckdb"
    assert run("backtest", PLAYBOOKS, "--population", 30, "--seed", 8, "--out", other,
               "--processes", 1).exit_code == 0
    figures = json.loads(run("report", "--compare", backtest, other, "--json").output)["figures"]
    customers = next(row for row in figures if row["figure"] == "customers")
    assert (customers["A"], customers["B"], customers["B - A"]) == (60, 30, -30)
    assert {"NPS", "promise kept rate", "messages per customer"} <= {row["figure"] for row in figures}


def test_export_to_parquet_and_json_lines(backtest: Path, tmp_path: Path):
    result = run("export", "--store", backtest, tmp_path / "records.parquet")
    assert result.exit_code == 0, result.output
    total = duckdb.connect(str(backtest), read_only=True).execute("SELECT count(*) FROM records").fetchone()[0]
    assert duckdb.sql(f"SELECT count(*) FROM '{tmp_path / 'records.parquet'}'").fetchall()[0][0] == total
    assert run("export", "--store", backtest, tmp_path / "records.jsonl").exit_code == 0
    assert len((tmp_path / "records.jsonl").read_text().splitlines()) == total
    assert (tmp_path / "records.customers.jsonl").exists()


@pytest.mark.parametrize("args, message", [
    (["report", "--store", "missing.duckdb"], "no analytics store here"),
    (["rank", "--store", "missing.duckdb"], "no analytics store here"),
    (["report", "--store", "x.duckdb", "--since", "yesterday-ish"], "--since: 'yesterday-ish' is not a date"),
    (["report", "--store", "x.duckdb", "--since", "2026-03-01T09:00:00"],
     "--since: '2026-03-01T09:00:00' needs its UTC offset"),
    (["rank", "--store", "missing.duckdb", "--until", "2026-03-01 09:00"], "--until: '2026-03-01 09:00' needs its UTC"),
    (["export", "--store", "x.duckdb", "out.csv"], "name it .parquet or .jsonl"),
])
def test_mistakes_are_one_line_and_exit_1(tmp_path: Path, args: list[str], message: str):
    args = [str(tmp_path / arg) if arg.endswith((".duckdb", ".csv")) else arg for arg in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_a_backtest_of_a_broken_lifecycle_says_where(tmp_path: Path):
    folder = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, folder)
    (folder / "lifecycle.yaml").write_text((folder / "lifecycle.yaml").read_text().replace("initial_stage:", "initial_stag:"))
    result = CliRunner().invoke(main, ["backtest", str(folder), "--population", "5", "--out", str(tmp_path / "o.duckdb")])
    assert result.exit_code == 1
    assert "lifecycle.yaml:" in result.output and "Traceback" not in result.output
