"""The questions the store answers, each one SQL query over the record stream.

Every definition is written down in docs/analytics.md; the names here follow it. A query
reads the view `r`: the records in the window (`since` <= occurred_at < `until`) of customers in the
segment, each with the customer's segment and preferred channel. Record kinds a question
does not know are left out of it, never an error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from analytics.store import Store


@dataclass(frozen=True)
class Vocabulary:
    """Which events and templates mean what: the bundled lifecycle's names by default."""

    survey_event: str = "survey.answered"
    score_field: str = "score"
    order_event: str = "order.placed"
    order_id_field: str = "order_id"
    order_value_field: str = "price"
    referral_event: str = "referral.made"
    referral_templates: tuple[str, ...] = ("referral_request",)
    ticket_opened: str = "ticket.opened"
    ticket_closed: str = "ticket.closed"
    ticket_id_field: str = "ticket_id"
    lost_stage: str = "lost"


@dataclass(frozen=True)
class RiskWeights:
    """Points per risk signal (docs/analytics.md, "Ranking")."""

    open_ticket: float = 3.0
    broken_promise: float = 2.0
    detractor_point: float = 1.0  # per point below 7 of the latest score
    per_30_days_silent: float = 1.0


@dataclass(frozen=True)
class Filters:
    """Which records a report reads."""

    since: datetime | None = None
    until: datetime | None = None
    segment: str | None = None


def window_bound(text: str) -> datetime:
    """A `since` / `until` as a person gives it: a date (its midnight UTC) or a time with its
    UTC offset. A time without one is refused (ValueError), as events refuse it: read as UTC
    it would be hours off for whoever meant their local time."""
    from engine.types import parse_time, without_offset

    moment = parse_time(text)
    if moment is None:
        raise ValueError(f"'{text}' is not a date (2026-03-01) or a time (2026-03-01T09:00:00Z)")
    if without_offset(text):
        raise ValueError(f"'{text}' needs its UTC offset (Z or +01:00), or give a date alone (2026-03-01): "
                         "without one it would be read as UTC, whatever zone you meant")
    return moment


@dataclass
class Analyst:
    """Answers the questions over one open store."""

    store: Store
    filters: Filters = field(default_factory=Filters)
    vocabulary: Vocabulary = field(default_factory=Vocabulary)
    weights: RiskWeights = field(default_factory=RiskWeights)
    clv_max_years: float = 5.0

    def __post_init__(self) -> None:
        conditions = ["TRUE"]
        if self.filters.since:
            conditions.append(f"rec.occurred_at >= {_time(self.filters.since)}")
        if self.filters.until:
            conditions.append(f"rec.occurred_at < {_time(self.filters.until)}")
        if self.filters.segment:
            conditions.append(f"rec.customer_id IN (SELECT customer_id FROM customers "
                              f"WHERE segment = {_text(self.filters.segment)})")
        # The customer's segment is joined only where a question groups by it: a join of every
        # record with its customer would cost each question a pass over the whole table.
        self.store.connection.execute(
            "CREATE OR REPLACE TEMP VIEW r AS SELECT rec.* FROM records rec WHERE " + " AND ".join(conditions)
        )
        self._funnel: list[dict[str, Any]] | None = None
        self._tables: set[str] = set()

    def _table(self, name: str, sql: str) -> str:
        """A temporary table computed once per Analyst, for the questions that read it several
        times (promises by three keys, NPS by five, both rankings): a report asks everything."""
        if name not in self._tables:
            self.store.connection.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {sql}")
            self._tables.add(name)
        return name

    def _rows(self, sql: str) -> list[dict[str, Any]]:
        return self.store.query(sql)

    # ------------------------------------------------------------ stages

    def funnel(self) -> list[dict[str, Any]]:
        """Per stage, in the order customers reach them: customers who entered, entries, how many
        of them went on to the next stage (conversion), who are there now, who were lost from it."""
        if self._funnel is not None:
            return [dict(row) for row in self._funnel]
        lost = _text(self.vocabulary.lost_stage)
        self.store.connection.execute("""
            CREATE OR REPLACE TEMP TABLE funnel_entries AS
            SELECT customer_id, chain, seq, stage,
                   lag(stage) OVER (PARTITION BY customer_id, chain ORDER BY seq) AS previous,
                   row_number() OVER (PARTITION BY customer_id, chain ORDER BY seq DESC) AS from_last
            FROM r WHERE kind = 'stage_entered'""")
        rows = self._rows("""
            WITH firsts AS (SELECT customer_id, stage, min(seq) AS first_seq FROM funnel_entries GROUP BY ALL),
            ordering AS (
                SELECT stage, avg(rank) AS place FROM (
                    SELECT stage, dense_rank() OVER (PARTITION BY customer_id ORDER BY first_seq) AS rank
                    FROM firsts) GROUP BY stage)
            SELECT e.stage, count(DISTINCT e.customer_id) AS customers, count(*) AS entries,
                   count(*) FILTER (WHERE e.from_last = 1) AS now_here, any_value(o.place) AS place
            FROM funnel_entries e JOIN ordering o USING (stage)
            GROUP BY e.stage ORDER BY place, e.stage""")
        lost_from = {row["previous"]: row["lifecycles"] for row in self._rows(f"""
            SELECT previous, count(DISTINCT (customer_id, chain)) AS lifecycles FROM funnel_entries
            WHERE stage = {lost} AND previous IS NOT NULL GROUP BY ALL""")}
        both = {(row["a"], row["b"]): row["customers"] for row in self._rows("""
            WITH reached AS (SELECT DISTINCT customer_id, stage FROM funnel_entries)
            SELECT x.stage AS a, y.stage AS b, count(*) AS customers
            FROM reached x JOIN reached y USING (customer_id) GROUP BY ALL""")}
        self.store.connection.execute("DROP TABLE funnel_entries")
        for here, after in zip(rows, rows[1:] + [None]):
            here.pop("place")
            here["lost_from"] = lost_from.get(here["stage"], 0)
            here["next_stage"] = after["stage"] if after else None
            here["conversion"] = _ratio(both.get((here["stage"], after["stage"]), 0), here["customers"]) \
                if after else None
        self._funnel = [dict(row) for row in rows]
        return rows

    def time_in_stage(self) -> list[dict[str, Any]]:
        """Days from entering a stage to entering the next one, per stage: p50, p90, mean, over
        the entries that have left (those still in the stage are counted apart)."""
        rows = self._rows("""
            WITH entries AS (
                SELECT stage, occurred_at,
                       lead(occurred_at) OVER (PARTITION BY customer_id, chain ORDER BY seq) AS left_at
                FROM r WHERE kind = 'stage_entered')
            SELECT stage, count(left_at) AS left, count(*) - count(left_at) AS still_in,
                   round(quantile_cont(epoch(left_at - occurred_at) / 86400.0, 0.5), 2) AS p50_days,
                   round(quantile_cont(epoch(left_at - occurred_at) / 86400.0, 0.9), 2) AS p90_days,
                   round(avg(epoch(left_at - occurred_at) / 86400.0), 2) AS mean_days
            FROM entries GROUP BY stage HAVING count(left_at) > 0 ORDER BY stage""")
        order = {row["stage"]: index for index, row in enumerate(self.funnel())}
        return sorted(rows, key=lambda row: (order.get(row["stage"], len(order)), row["stage"]))

    # ------------------------------------------------------------ promises

    def _promise_outcomes(self) -> str:
        """Each check of a promise with the promise it checked (the latest made before it)."""
        return """
            WITH made AS (SELECT customer_id, chain, promise, seq, about, made_by, c.segment
                          FROM r LEFT JOIN customers c USING (customer_id) WHERE kind = 'promise'),
            checks AS (SELECT customer_id, chain, promise, seq, kind, occurred_at FROM r
                       WHERE kind IN ('promise_kept', 'promise_broken')),
            outcomes AS (
                SELECT c.*, m.about, m.made_by, m.segment AS made_segment FROM checks c
                ASOF LEFT JOIN made m ON c.customer_id = m.customer_id AND c.chain = m.chain
                    AND c.promise = m.promise AND c.seq >= m.seq)
        """

    def promises(self, by: str = "about") -> list[dict[str, Any]]:
        """Promises made, kept and broken, grouped by `about` (the kind of promise), `made_by`
        (the role that made it) or `segment`; kept rate = kept / (kept + broken)."""
        if by not in ("about", "made_by", "segment"):
            raise ValueError(f"promises by '{by}': about, made_by or segment")
        outcome_key = "made_segment" if by == "segment" else by
        made = self._table("promise_made", self._promise_outcomes() + "SELECT * FROM made")
        outcomes = self._table("promise_outcomes", self._promise_outcomes() + "SELECT * FROM outcomes")
        rows = self._rows(f"""
            WITH made_counts AS (SELECT coalesce({by}, '(none)') AS key, count(*) AS made FROM {made} GROUP BY ALL),
            outcome_counts AS (
                SELECT coalesce({outcome_key}, '(none)') AS key,
                       count(*) FILTER (WHERE kind = 'promise_kept') AS kept,
                       count(*) FILTER (WHERE kind = 'promise_broken') AS broken
                FROM {outcomes} GROUP BY ALL)
            SELECT key, coalesce(made, 0) AS made, coalesce(kept, 0) AS kept, coalesce(broken, 0) AS broken
            FROM made_counts FULL OUTER JOIN outcome_counts USING (key) ORDER BY key""")
        return [{by: row.pop("key"), **row, "kept_rate": _ratio(row["kept"], row["kept"] + row["broken"])}
                for row in rows]

    def recovery(self) -> dict[str, Any]:
        """What followed a broken promise: the first task of the same stage entry at or after it
        (the recovery), whether it was done by its due time, and the first survey answer after it."""
        survey, score = _text(self.vocabulary.survey_event), _text(self.vocabulary.score_field)
        rows = self._rows(f"""
            WITH broken AS (SELECT customer_id, chain, seq, occurred_at, stage FROM r WHERE kind = 'promise_broken'),
            tasks AS (SELECT customer_id, chain, seq, occurred_at, stage, step, due_at FROM r WHERE kind = 'task'),
            entries AS (SELECT customer_id, chain, seq FROM r WHERE kind = 'stage_entered'),
            recovery AS (
                SELECT b.customer_id, b.chain, b.seq AS broken_seq, b.occurred_at AS broken_at,
                    (SELECT t.seq FROM tasks t WHERE t.customer_id = b.customer_id AND t.chain = b.chain
                       AND t.stage = b.stage AND t.seq > b.seq
                       AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.customer_id = b.customer_id
                                       AND e.chain = b.chain AND e.seq > b.seq AND e.seq < t.seq)
                     ORDER BY t.seq LIMIT 1) AS task_seq
                FROM broken b),
            done AS (SELECT customer_id, chain, seq, occurred_at, detail->>'$.data.task' AS task FROM r
                     WHERE kind = 'event' AND event = 'task.completed'),
            answers AS (SELECT customer_id, occurred_at, TRY_CAST(detail->>('$.data.' || {score}) AS INTEGER) AS score
                        FROM r WHERE kind = 'event' AND event = {survey})
            SELECT rc.customer_id, rc.broken_at, t.step AS task, t.due_at,
                (SELECT min(d.occurred_at) FROM done d WHERE d.customer_id = rc.customer_id AND d.chain = rc.chain
                   AND d.task = t.step AND d.seq > t.seq) AS done_at,
                (SELECT a.score FROM answers a WHERE a.customer_id = rc.customer_id AND a.occurred_at >= rc.broken_at
                 ORDER BY a.occurred_at LIMIT 1) AS score_after
            FROM recovery rc LEFT JOIN tasks t ON t.customer_id = rc.customer_id AND t.chain = rc.chain
                AND t.seq = rc.task_seq""")
        with_task = [row for row in rows if row["task"] is not None]
        in_time = [row for row in with_task if row["done_at"] is not None
                   and (row["due_at"] is None or row["done_at"] <= row["due_at"])]
        customers: dict[str, int | None] = {}
        for row in sorted(rows, key=lambda row: row["broken_at"]):
            customers.setdefault(row["customer_id"], row["score_after"])
        scores = [score for score in customers.values() if score is not None]
        return {
            "broken": len(rows), "with_recovery_task": len(with_task), "recovered_in_time": len(in_time),
            "recovery_in_time_rate": _ratio(len(in_time), len(with_task)),
            "customers": len(customers), "answered_after": len(scores),
            "mean_score_after": round(sum(scores) / len(scores), 2) if scores else None,
            "nps_after": _nps(scores)["nps"] if scores else None,
        }

    # ------------------------------------------------------------ NPS

    def _answers(self) -> str:
        survey, score = _text(self.vocabulary.survey_event), _text(self.vocabulary.score_field)
        return f"""
            WITH answers AS (
                SELECT customer_id, chain, seq, occurred_at, c.segment,
                       TRY_CAST(detail->>('$.data.' || {score}) AS INTEGER) AS score
                FROM r LEFT JOIN customers c USING (customer_id) WHERE kind = 'event' AND event = {survey}),
            cohorts AS (SELECT customer_id, strftime(min(occurred_at), '%Y-%m') AS cohort FROM records GROUP BY ALL),
            graded AS (
                SELECT a.*, co.cohort, strftime(a.occurred_at, '%Y-%m') AS month,
                    EXISTS (SELECT 1 FROM r b WHERE b.kind = 'promise_broken' AND b.customer_id = a.customer_id
                            AND b.occurred_at <= a.occurred_at) AS broken_before
                FROM answers a LEFT JOIN cohorts co USING (customer_id) WHERE a.score BETWEEN 0 AND 10)
        """

    def nps(self, by: str | None = None) -> list[dict[str, Any]]:
        """Net Promoter Score over every survey answer: promoters 9-10, passives 7-8, detractors 0-6;
        NPS = % promoters - % detractors. `by`: segment, cohort (month of the customer's first
        record), month (of the answer) or broken_promise (a promise broken before the answer)."""
        keys = {None: "'all'", "segment": "coalesce(segment, '(none)')", "cohort": "cohort", "month": "month",
                "broken_promise": "CASE WHEN broken_before THEN 'broken' ELSE 'none broken' END"}
        if by not in keys:
            raise ValueError(f"nps by '{by}': segment, cohort, month or broken_promise")
        graded = self._table("nps_graded", self._answers() + "SELECT * FROM graded")
        rows = self._rows(f"""
            SELECT {keys[by]} AS key, count(*) AS answers,
                   count(*) FILTER (WHERE score >= 9) AS promoters,
                   count(*) FILTER (WHERE score BETWEEN 7 AND 8) AS passives,
                   count(*) FILTER (WHERE score <= 6) AS detractors
            FROM {graded} GROUP BY ALL HAVING count(*) > 0 ORDER BY key""")
        return [{by or "group": row.pop("key"), **row,
                 "nps": round(100.0 * (row["promoters"] - row["detractors"]) / row["answers"], 1)} for row in rows]

    # ------------------------------------------------------------ referrals, tasks, messages

    def referrals(self) -> dict[str, Any]:
        """Referral requests (messages of the referral templates) and referrals made (events)."""
        templates = ", ".join(_text(name) for name in self.vocabulary.referral_templates) or "NULL"
        made = _text(self.vocabulary.referral_event)
        row = self._rows(f"""
            WITH asked AS (SELECT customer_id, min(occurred_at) AS first_asked, count(*) AS requests FROM r
                           WHERE kind = 'message' AND template IN ({templates}) GROUP BY ALL),
            made AS (SELECT customer_id, occurred_at FROM r WHERE kind = 'event' AND event = {made})
            SELECT (SELECT coalesce(sum(requests), 0) FROM asked) AS requests,
                   (SELECT count(*) FROM asked) AS customers_asked,
                   (SELECT count(*) FROM made) AS referrals_made,
                   (SELECT count(DISTINCT customer_id) FROM made) AS customers_referring,
                   (SELECT count(DISTINCT m.customer_id) FROM made m JOIN asked a USING (customer_id)
                     WHERE m.occurred_at >= a.first_asked) AS referring_after_asked""")[0]
        row["conversion"] = _ratio(row["referring_after_asked"], row["customers_asked"])
        return row

    def task_sla(self) -> list[dict[str, Any]]:
        """Per role: tasks created, done (a task.completed event naming the task's id or step, in
        or outside a waiting step), done by the due time (the latest one a snooze or reassign set, else the task's) or
        late, cancelled, snoozed and reassigned (task_changed records), overdue (the task's
        timeout), escalated (an overdue task followed at once by another task)."""
        rows = self._rows("""
            WITH tasks AS (SELECT customer_id, chain, seq, step, role, due_at,
                                  detail->>'$.action_id' AS task_id FROM r WHERE kind = 'task'),
            done AS (SELECT customer_id, chain, seq, occurred_at, detail->>'$.data.task' AS task FROM r
                     WHERE kind = 'event' AND event = 'task.completed'),
            changed AS (SELECT customer_id, chain, seq, occurred_at, step, detail->>'$.task' AS task,
                               detail->>'$.action' AS action, due_at
                        FROM r WHERE kind = 'task_changed'),
            overdue AS (SELECT customer_id, chain, seq, step, role,
                           lead(kind) OVER (PARTITION BY customer_id, chain ORDER BY seq) AS next_kind
                        FROM r WHERE kind IN ('timeout', 'task')),
            its AS (  -- each task's changes: by its id, or (a waiting step's own record) by its step after it
                SELECT t.customer_id, t.chain, t.seq, c.action, c.due_at, c.occurred_at
                FROM tasks t JOIN changed c ON c.customer_id = t.customer_id
                     AND (c.task = t.task_id OR (c.task IS NULL AND c.chain = t.chain AND c.step = t.step
                                                 AND c.seq > t.seq))),
            completed AS (
                SELECT t.role, t.customer_id, t.chain, t.seq, t.due_at,
                       (SELECT min(d.occurred_at) FROM done d WHERE d.customer_id = t.customer_id
                          AND (d.task = t.task_id OR (d.chain = t.chain AND d.task = t.step AND d.seq > t.seq)))
                          AS done_at
                FROM tasks t),
            judged AS (
                SELECT c.*, coalesce(
                           (SELECT arg_max(i.due_at, i.occurred_at) FROM its i WHERE i.customer_id = c.customer_id
                              AND i.chain = c.chain AND i.seq = c.seq AND i.due_at IS NOT NULL
                              AND (c.done_at IS NULL OR i.occurred_at <= c.done_at)),
                           c.due_at) AS due,
                       EXISTS (SELECT 1 FROM its i WHERE i.customer_id = c.customer_id AND i.chain = c.chain
                                 AND i.seq = c.seq AND i.action IN ('cancel', 'cancelled')) AS cancelled,
                       EXISTS (SELECT 1 FROM its i WHERE i.customer_id = c.customer_id AND i.chain = c.chain
                                 AND i.seq = c.seq AND i.action = 'snooze') AS snoozed,
                       EXISTS (SELECT 1 FROM its i WHERE i.customer_id = c.customer_id AND i.chain = c.chain
                                 AND i.seq = c.seq AND i.action = 'reassign') AS reassigned
                FROM completed c),
            created AS (SELECT coalesce(role, '(none)') AS role, count(*) AS created,
                               count(done_at) AS done,
                               count(*) FILTER (WHERE done_at IS NOT NULL AND (due IS NULL OR done_at <= due))
                                   AS done_on_time,
                               count(*) FILTER (WHERE done_at > due) AS done_late,
                               count(*) FILTER (WHERE cancelled) AS cancelled,
                               count(*) FILTER (WHERE snoozed) AS snoozed,
                               count(*) FILTER (WHERE reassigned) AS reassigned
                        FROM judged GROUP BY ALL),
            late AS (SELECT coalesce(o.role, '(none)') AS role, count(*) AS overdue,
                            count(*) FILTER (WHERE o.next_kind = 'task') AS escalated
                     FROM overdue o JOIN r t ON t.customer_id = o.customer_id AND t.chain = o.chain
                          AND t.seq = o.seq AND t.detail->>'$.reason' = 'task overdue'
                     GROUP BY ALL)
            SELECT role, coalesce(created, 0) AS created, coalesce(done, 0) AS done,
                   coalesce(done_on_time, 0) AS done_on_time, coalesce(done_late, 0) AS done_late,
                   coalesce(cancelled, 0) AS cancelled, coalesce(snoozed, 0) AS snoozed,
                   coalesce(reassigned, 0) AS reassigned, coalesce(overdue, 0) AS overdue,
                   coalesce(escalated, 0) AS escalated
            FROM created FULL OUTER JOIN late USING (role) ORDER BY role""")
        for row in rows:
            row["on_time_rate"] = _ratio(row["done_on_time"], row["done"] + row["overdue"])
        return rows

    def messages(self) -> list[dict[str, Any]]:
        """Messages by record kind (sent, suppressed, failed, and kinds added later such as deferred),
        channel and category; with how many distinct customers."""
        return self._rows("""
            SELECT kind, coalesce(channel, '(none)') AS channel, coalesce(category, '(none)') AS category,
                   count(*) AS records, count(DISTINCT customer_id) AS customers
            FROM r WHERE kind = 'message' OR kind = 'suppressed' OR (kind <> 'set' AND channel IS NOT NULL)
                OR (kind NOT IN ('stage_entered', 'event', 'task', 'promise', 'promise_kept', 'promise_broken',
                                 'timeout', 'set', 'ended', 'incident', 'resolved', 'failed')
                    AND template IS NOT NULL)
            GROUP BY ALL ORDER BY kind, channel, category""")

    def consent(self) -> dict[str, list[dict[str, Any]]]:
        """Consent and opt-outs: `opt_outs` by month (customer.unsubscribed, or consent withdrawn for
        every message), consent `changes` by channel and category (granted / withdrawn), sends
        `suppressed` by the policy's reason and rule, and sends `deferred` by reason and rule."""
        # A `consent` record says the policy took the event; the event record just before it
        # (same customer and chain) holds what changed.
        changes = """
            SELECT * FROM (
                SELECT customer_id, occurred_at, kind, event,
                       lag(detail) OVER (PARTITION BY customer_id, chain ORDER BY seq) AS took
                FROM r WHERE kind IN ('event', 'consent'))
            WHERE kind = 'consent'"""
        opt_outs = self._rows(f"""
            SELECT strftime(occurred_at, '%Y-%m') AS month, count(DISTINCT customer_id) AS customers,
                   count(*) AS opt_outs
            FROM ({changes}) WHERE event = 'customer.unsubscribed'
                OR (took->>'$.data.granted' IS DISTINCT FROM 'true' AND took->>'$.data.channel' IS NULL
                    AND took->>'$.data.category' IS NULL)
            GROUP BY ALL ORDER BY month""")
        by_channel = self._rows(f"""
            SELECT coalesce(took->>'$.data.channel', '(all)') AS channel,
                   coalesce(took->>'$.data.category', '(all)') AS category,
                   count(*) FILTER (WHERE took->>'$.data.granted' = 'true') AS granted,
                   count(*) FILTER (WHERE took->>'$.data.granted' IS DISTINCT FROM 'true') AS withdrawn,
                   count(DISTINCT customer_id) AS customers
            FROM ({changes}) WHERE event <> 'customer.unsubscribed'
            GROUP BY ALL ORDER BY channel, category""")

        def why(kind: str) -> list[dict[str, Any]]:
            return self._rows(f"""
                SELECT coalesce(detail->>'$.reason', '(none)') AS reason,
                       coalesce(detail->>'$.rule', '(none)') AS rule,
                       count(*) AS records, count(DISTINCT customer_id) AS customers
                FROM r WHERE kind = '{kind}' GROUP BY ALL ORDER BY records DESC, reason, rule""")

        return {"opt_outs": opt_outs, "changes": by_channel, "suppressed": why("suppressed"),
                "deferred": why("deferred")}

    def channel_preferences(self) -> list[dict[str, Any]]:
        """Customers by their preferred channel (from their profile), with the share of each."""
        rows = self._rows("""
            SELECT coalesce(c.preferred_channel, '(none)') AS channel, count(*) AS customers
            FROM customers c WHERE c.customer_id IN (SELECT DISTINCT customer_id FROM r)
            GROUP BY ALL ORDER BY customers DESC, channel""")
        total = sum(row["customers"] for row in rows)
        for row in rows:
            row["share"] = _ratio(row["customers"], total)
        return rows

    # ------------------------------------------------------------ value and risk

    def _orders(self) -> str:
        v = self.vocabulary
        return f"""
            WITH orders AS (
                SELECT customer_id, detail->>('$.data.' || {_text(v.order_id_field)}) AS order_id,
                       arg_min(TRY_CAST(detail->>('$.data.' || {_text(v.order_value_field)}) AS DOUBLE), seq) AS value,
                       min(occurred_at) AS occurred_at
                FROM r WHERE kind = 'event' AND event = {_text(v.order_event)} GROUP BY ALL),
            per_customer AS (SELECT customer_id, count(*) AS orders, coalesce(sum(value), 0) AS revenue
                             FROM orders GROUP BY ALL)
        """

    def revenue(self) -> dict[str, Any]:
        """Revenue (first value of each distinct order), orders, repeat purchases and the CLV
        estimate: average order value x orders per customer-year x expected years, where the
        expected years are 1 / yearly churn (customers lost per customer-year observed: from a
        customer's first record to their loss, or to `until` / the latest record), at most
        `clv_max_years`."""
        lost = _text(self.vocabulary.lost_stage)
        as_of = self._as_of()
        row = self._rows(self._orders() + f"""
            , lost_at AS (SELECT customer_id, min(occurred_at) AS at_ FROM r
                          WHERE kind = 'stage_entered' AND stage = {lost} GROUP BY ALL),
            spans AS (SELECT customer_id,
                             greatest(epoch(coalesce(l.at_, {as_of}) - min(occurred_at)) / (365.25 * 86400), 1.0 / 12)
                                 AS years
                      FROM r LEFT JOIN lost_at l USING (customer_id) GROUP BY customer_id, l.at_)
            SELECT (SELECT count(*) FROM per_customer) AS customers,
                   (SELECT count(*) FROM orders) AS orders,
                   (SELECT coalesce(sum(revenue), 0) FROM per_customer) AS revenue,
                   (SELECT count(*) FROM per_customer WHERE orders >= 2) AS repeat_customers,
                   (SELECT coalesce(sum(s.years), 0) FROM spans s JOIN per_customer USING (customer_id))
                       AS customer_years,
                   (SELECT count(DISTINCT customer_id) FROM r WHERE kind = 'stage_entered' AND stage = {lost})
                       AS lost
            """)[0]
        customers, orders = row["customers"], row["orders"]
        row["revenue"] = round(float(row["revenue"]), 2)
        row["revenue_per_customer"] = round(row["revenue"] / customers, 2) if customers else None
        row["average_order_value"] = round(row["revenue"] / orders, 2) if orders else None
        row["repeat_rate"] = _ratio(row["repeat_customers"], customers)
        years = float(row.pop("customer_years"))
        row["customer_years"] = round(years, 2)
        frequency = orders / years if years else 0.0
        churn = row["lost"] / years if years else 0.0
        expected_years = min(1 / churn, self.clv_max_years) if churn else self.clv_max_years
        row["orders_per_customer_year"] = round(frequency, 3)
        row["yearly_churn"] = round(churn, 4)
        row["expected_years"] = round(expected_years, 2)
        row["clv"] = round((row["average_order_value"] or 0.0) * frequency * expected_years, 2)
        return row

    def _as_of(self) -> str:
        """The moment `revenue` and `ranking` count up to: `until`, or the latest record read."""
        return _time(self.filters.until) if self.filters.until else "(SELECT max(occurred_at) FROM r)"

    def ranking(self, by: str = "value", top: int = 20) -> list[dict[str, Any]]:
        """Customers ranked by value (revenue to date) or by risk: weighted open tickets, broken
        promises, how far the latest score is below 7, and days since the last message or task,
        as of `until` (or the latest record)."""
        if by not in ("value", "risk"):
            raise ValueError(f"rank by '{by}': value or risk")
        v, w = self.vocabulary, self.weights
        as_of = self._as_of()
        ranked = self._table("ranked", self._orders() + f"""
            , tickets AS (
                SELECT customer_id,
                    count(DISTINCT ticket) FILTER (WHERE event = {_text(v.ticket_opened)}) AS opened,
                    count(DISTINCT ticket) FILTER (WHERE event = {_text(v.ticket_closed)}) AS closed
                FROM (SELECT customer_id, event, detail->>('$.data.' || {_text(v.ticket_id_field)}) AS ticket
                      FROM r WHERE kind = 'event') GROUP BY ALL),
            scores AS (
                SELECT customer_id,
                       arg_max(TRY_CAST(detail->>('$.data.' || {_text(v.score_field)}) AS INTEGER), seq) AS latest_score
                FROM r WHERE kind = 'event' AND event = {_text(v.survey_event)} GROUP BY ALL),
            signals AS (
                SELECT customer_id,
                       count(*) FILTER (WHERE kind = 'promise_broken') AS broken_promises,
                       max(occurred_at) FILTER (WHERE kind IN ('message', 'task')) AS last_contact
                FROM r GROUP BY ALL),
            ranked AS (
                SELECT s.customer_id, coalesce(p.revenue, 0) AS revenue, coalesce(p.orders, 0) AS orders,
                    greatest(coalesce(t.opened, 0) - coalesce(t.closed, 0), 0) AS open_tickets,
                    s.broken_promises, sc.latest_score,
                    CASE WHEN s.last_contact IS NULL THEN NULL
                         ELSE greatest(epoch({as_of} - s.last_contact) / 86400.0, 0) END AS days_since_contact
                FROM signals s LEFT JOIN per_customer p USING (customer_id) LEFT JOIN tickets t USING (customer_id)
                    LEFT JOIN scores sc USING (customer_id))
            SELECT *, round({w.open_ticket} * open_tickets + {w.broken_promise} * broken_promises
                        + {w.detractor_point} * CASE WHEN latest_score < 7 THEN 7 - latest_score ELSE 0 END
                        + {w.per_30_days_silent} * coalesce(days_since_contact, 0) / 30.0, 2) AS risk
            FROM ranked""")
        rows = self._rows(f"SELECT * FROM {ranked} ORDER BY {'revenue' if by == 'value' else 'risk'} DESC, "
                          f"customer_id LIMIT {int(top)}")
        for row in rows:
            row["revenue"] = round(float(row["revenue"]), 2)
            if row["days_since_contact"] is not None:
                row["days_since_contact"] = round(float(row["days_since_contact"]), 1)
        return rows

    # ------------------------------------------------------------ everything

    def summary(self) -> dict[str, Any]:
        """Counts of records, customers and the window they span."""
        return self._rows("""
            SELECT count(*) AS records, count(DISTINCT customer_id) AS customers,
                   min(occurred_at) AS first, max(occurred_at) AS last
            FROM r""")[0]

    def report(self) -> dict[str, Any]:
        """Every question at once: what `lifecycle report` shows."""
        return {
            "summary": self.summary(),
            "funnel": self.funnel(),
            "time_in_stage": self.time_in_stage(),
            "promises_by_kind": self.promises("about"),
            "promises_by_role": self.promises("made_by"),
            "promises_by_segment": self.promises("segment"),
            "recovery": self.recovery(),
            "nps": self.nps(),
            "nps_by_segment": self.nps("segment"),
            "nps_by_cohort": self.nps("cohort"),
            "nps_by_month": self.nps("month"),
            "nps_by_broken_promise": self.nps("broken_promise"),
            "referrals": self.referrals(),
            "task_sla": self.task_sla(),
            "messages": self.messages(),
            **{f"consent_{key}": rows for key, rows in self.consent().items()},
            "channel_preferences": self.channel_preferences(),
            "revenue": self.revenue(),
            "top_value": self.ranking("value", 10),
            "top_risk": self.ranking("risk", 10),
        }


def _nps(scores: list[int]) -> dict[str, Any]:
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return {"nps": round(100.0 * (promoters - detractors) / len(scores), 1) if scores else None}


def _ratio(part: int | float, whole: int | float) -> float | None:
    return round(part / whole, 4) if whole else None


def _text(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _time(moment: datetime) -> str:
    """A SQL literal of the moment in UTC (the store's time); one at the edge of the calendar,
    whose UTC would fall outside it, is taken as it is written."""
    if moment.tzinfo is not None:
        try:
            moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
        except OverflowError:
            moment = moment.replace(tzinfo=None)
    return f"TIMESTAMP '{moment.isoformat(sep=' ')}'"
