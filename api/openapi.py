"""The OpenAPI document, with the lifecycle's own events in it.

The request body of POST /v1/events is a `oneOf` with one variant per declared event,
discriminated by `event`; each variant's `data` is `payload_json_schema` of that event.
The document follows the lifecycle file: it is rebuilt when the API reloads the playbooks.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

from api.limits import ID_PATTERN, KEY_PATTERN
from engine.events import declared_events, payload_json_schema
from engine.model import BUILTIN_CUSTOMER_FIELDS, EventSpec, Lifecycle
from engine.project import Project

EVENT_REQUEST = "EventRequest"
BATCH_REQUEST = "BatchRequest"
PROFILE = "CustomerProfile"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def variant_name(event: str) -> str:
    """The component name of one event's request schema."""
    return f"Event-{event}"


def profile_schema(lifecycle: Lifecycle) -> dict[str, Any]:
    """The `customer` object: the built-in and declared customer fields, all optional."""
    # `id` is left out: it is `customer_id` (the API accepts it when equal).
    fields = {name: spec.model_copy(update={"required": False})
              for name, spec in {**BUILTIN_CUSTOMER_FIELDS, **lifecycle.customer}.items() if name != "id"}
    schema = payload_json_schema(EventSpec(payload=fields))
    schema.pop("required", None)
    schema["properties"]["consent"]["additionalProperties"] = {"type": "boolean"}
    schema["description"] = "Profile fields to set on the customer before the event is handled."
    return schema


def event_components(lifecycle: Lifecycle, max_batch: int) -> dict[str, dict[str, Any]]:
    """Component schemas: one per event, the discriminated union of them, the batch, the profile."""
    components: dict[str, dict[str, Any]] = {PROFILE: profile_schema(lifecycle)}
    mapping = {}
    for name, spec in sorted(declared_events(lifecycle).items()):
        data = payload_json_schema(spec)
        variant = {
            "type": "object",
            "title": name,
            "description": spec.description or f"The event '{name}'.",
            "properties": {
                "customer_id": {"type": "string", "pattern": ID_PATTERN, "maxLength": 200,
                                "description": "The customer's id in your systems."},
                "event": {"type": "string", "enum": [name]},
                "data": data,
                "idempotency_key": {"type": "string", "pattern": KEY_PATTERN, "maxLength": 200,
                                    "description": "The same key is acted on once per customer."},
                "occurred_at": {"type": "string", "format": "date-time",
                                "description": "When it happened, with a time zone (default: when received)."},
                "customer": _ref(PROFILE),
            },
            "required": ["customer_id", "event", *(["data"] if data["required"] else [])],
            "additionalProperties": False,
        }
        if spec.starts_lifecycle:
            variant["description"] += " Starts the customer's lifecycle when none exists."
        components[variant_name(name)] = variant
        mapping[name] = f"#/components/schemas/{variant_name(name)}"
    components[EVENT_REQUEST] = {
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "event", "mapping": mapping},
        "description": "An event for one customer; `data` follows the event's declared payload.",
    }
    components[BATCH_REQUEST] = {
        "type": "object",
        "properties": {"events": {"type": "array", "items": _ref(EVENT_REQUEST), "maxItems": max_batch}},
        "required": ["events"],
        "additionalProperties": False,
    }
    return components


def request_body(component: str) -> dict[str, Any]:
    """An `openapi_extra` for a route that reads its JSON body itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": _ref(component)}}}}


def _enumerate_stages(document: dict[str, Any], stages: list[str]) -> None:
    # The route checks `stage` against the lifecycle it has now; the document says which.
    for parameter in document["paths"]["/v1/customers"]["get"].get("parameters", []):
        if parameter["name"] == "stage":
            parameter["schema"] = {"type": "string", "enum": stages}


def install_openapi(app: FastAPI, project: Callable[[], Project], max_batch: int) -> None:
    """Make `app.openapi()` add the current lifecycle's event schemas, rebuilding on change."""
    generate = app.openapi
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        current = project()
        if built.get("project") is not current:
            app.openapi_schema = None
            document = copy.deepcopy(generate())
            document.setdefault("components", {}).setdefault("schemas", {}).update(
                event_components(current.lifecycle, max_batch))
            _enumerate_stages(document, list(current.lifecycle.stages))
            built.update(project=current, document=document)
        return built["document"]

    app.openapi = openapi  # type: ignore[method-assign]
