"""Analytical CRM: every lifecycle record in a DuckDB store, and the questions it answers.

`stream` is the record stream (plain data, imported by the workflow), `store` the DuckDB
file and its exports, `activity` the worker's side, `metrics` the questions, `report`,
`html` and `backtest` where people see them. Nothing under engine/ imports this package.
"""
