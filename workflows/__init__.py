"""The Temporal shell around the engine: the customer-lifecycle workflow and its client."""

from workflows.lifecycle import CustomerLifecycle

CUSTOMER_WORKFLOWS = [CustomerLifecycle]
