"""The native API's OpenAPI 3.1 document, written as Python data next to the handlers.

`document()` is served at `/api/v1/openapi.json`; tests keep it in step with the routes
(every route is in it and nothing else) and run schemathesis against it. Server URLs are
relative (`/api/v1`): the document is right wherever the bridge is reached.
"""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from ...store import targets
from ..params import MAX_TEXT, MAX_VALUES, TEXT_PATTERN
from .body import MAX_ID, MAX_ITEMS
from .body import MAX_TEXT as MAX_BODY_TEXT
from .query import DIRECTIONS, MAX_LIMIT, MAX_OFFSET, ORDERS, SORTS, STATUSES

Schema = dict[str, Any]
VERSION = "1.0.0"


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def text(limit: int = MAX_TEXT, **more: Any) -> Schema:
    return {"type": "string", "maxLength": limit, "pattern": TEXT_PATTERN, **more}


def nullable(kind: str, **more: Any) -> Schema:
    return {"type": [kind, "null"], **more}


def obj(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    """A closed object: these properties and no others."""
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
        "additionalProperties": False,
    }


def listing(item: str, **more: Schema) -> Schema:
    return obj({"items": {"type": "array", "items": ref(item)}, **more})


def json_body(schema: Schema) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def answer(description: str, schema: Schema | None = None, **headers: str) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description}
    if schema is not None:
        out["content"] = {"application/json": {"schema": schema}}
    if headers:
        out["headers"] = {
            k: {"description": v, "schema": {"type": "string"}} for k, v in headers.items()
        }
    return out


def error(description: str) -> dict[str, Any]:
    return answer(description, ref("Error"))


# ---------------------------------------------------------------- parameters


def query(name: str, schema: Schema, description: str, required: bool = False) -> Schema:
    if schema.get("type") == "string" and "enum" not in schema:
        schema = {"allOf": [schema, {"pattern": "\\S"}]}  # given: not blank
    out = {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema,
    }
    return out  # a parameter given must say something: `name=` is a 400


def query_list(name: str, items: Schema, description: str, required: bool = False) -> Schema:
    p = query(
        name,
        {
            "type": "array",
            "items": items,
            "maxItems": MAX_VALUES,
            **({"minItems": 1} if required else {}),
        },
        description + " Repeat the parameter or separate values with commas.",
        required,
    )
    p.update(style="form", explode=True)
    return p


def path(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": schema,
    }


TIME = {"type": "string", "format": "date-time"}
TIME_NOTE = (
    " ISO 8601 (`2026-11-28T08:00:00Z`; a date alone is its midnight UTC) or `20261128T080000Z`."
)
_PART = "[^,\\u0000-\\u001f\\u007f-\\u009f]*"
SOME_NAME = text(pattern=f"^{_PART}[^,\\s\\u0000-\\u001f\\u007f-\\u009f]{_PART}$")  # not blank
NAME_ITEM = SOME_NAME  # one value of a list parameter: not blank, no comma
PHONE = text(pattern="^[^\\u0000-\\u001f\\u007f-\\u009f]*[0-9][^\\u0000-\\u001f\\u007f-\\u009f]*$")

CALL_FILTERS = [
    query("from", TIME, "Calls that started at or after this time." + TIME_NOTE),
    query("to", TIME, "Calls that started before this time." + TIME_NOTE),
    query("ended_from", TIME, "Calls that ended at or after this time." + TIME_NOTE),
    query("ended_to", TIME, "Calls that ended before this time." + TIME_NOTE),
    query_list("direction", {"type": "string", "enum": list(DIRECTIONS)}, "Direction."),
    query_list("status", {"type": "string", "enum": list(STATUSES)}, "Status of the history."),
    query_list("user", NAME_ITEM, "The call's employee (login), as the history names them."),
    query_list("ext", NAME_ITEM, "The call's employee's extension."),
    query_list(
        "participant",
        NAME_ITEM,
        "Employees (logins) who took part at all: rung, talked or placed it.",
    ),
    query_list(
        "group", NAME_ITEM, "A queue or ring group: its name, or its directory id or number."
    ),
    query(
        "phone",
        PHONE,
        "The customer's number (normalised to E.164 digits: `+7 910 123-45-67` works).",
    ),
    query("diversion", PHONE, "The company number (DID) the call came in on or went out from."),
    query(
        "q",
        text(),
        "Text search: a part of the customer's or company number, the employee, the "
        "extension, the group or the call id.",
    ),
    query(
        "missed_status",
        {"type": "integer", "minimum": 0, "maximum": 32767},
        "`2`: outbound calls that called back a missed customer.",
    ),
    query_list("callid", NAME_ITEM, "These calls only."),
]
ORDERING = [
    query(
        "sort",
        {"type": "string", "enum": list(SORTS), "default": "start"},
        "Sort by start time, conversation length or wait.",
    ),
    query(
        "order",
        {"type": "string", "enum": list(ORDERS), "default": "desc"},
        "Newest (largest) first, or oldest first.",
    ),
]
PAGING = [
    query(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        "Rows to skip (deep pages: use `after`).",
    ),
    query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
        "Rows per page.",
    ),
    query(
        "after",
        {"type": "string", "maxLength": 2000},
        "The `next` cursor of the previous page, as it was given (keep the same filters, "
        "sort and order).",
    ),
    query(
        "total",
        {"type": "boolean", "default": False},
        "Also count every call the filters select (`total`).",
    ),
]
CLOUD_COMMON = [
    query("from", TIME, "Calls that started at or after this time." + TIME_NOTE),
    query("to", TIME, "Calls that started before this time." + TIME_NOTE),
    query(
        "sort",
        {"type": "string", "enum": ["date", "duration"], "default": "date"},
        "Sort by date or by duration.",
    ),
    query(
        "order",
        {"type": "string", "enum": list(ORDERS), "default": "desc"},
        "Descending or ascending.",
    ),
    query(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET, "default": 0},
        "Calls to skip: 50 starts at the 51st call.",
    ),
    query(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
        "How many calls.",
    ),
]
CALLID = path("callid", {"type": "string"}, "The call id (the Asterisk Linkedid of the call).")
SUB_NAME = path("name", {"type": "string"}, "The subscription's name.")

# ---------------------------------------------------------------- schemas

# `GET /calls/{callid}` answers a call still in progress too (the callid `/dial` gave)
UP = "null while the call is up"
CALL: dict[str, Schema] = {
    "callid": {"type": "string", "description": "The call id (Asterisk Linkedid)."},
    "direction": {"type": "string", "enum": list(DIRECTIONS)},
    "status": {
        "type": ["string", "null"],
        "enum": [*STATUSES, None],
        "description": f"How the call ended: {UP} (lists hold finished calls only).",
    },
    "caller": {
        "type": "string",
        "description": "Inbound the customer's number, else the employee's extension.",
    },
    "destination": {
        "type": "string",
        "description": "Inbound the company number dialled, else the number the employee dialled.",
    },
    "phone": {"type": "string", "description": "The customer's number, E.164 digits."},
    "phone_name": {
        "type": "string",
        "description": "The name the carrier presented with an inbound caller's number "
        "('' when none, or only the number again).",
    },
    "diversion": {"type": "string", "description": "The company number, E.164 digits."},
    "user": {"type": "string", "description": "The employee's login ('' when none took part)."},
    "user_name": {"type": "string", "description": "The employee's name in the directory."},
    "ext": {"type": "string", "description": "The employee's extension."},
    "group": {"type": "string", "description": "The queue or ring group the call went through."},
    "start": {"type": "string", "format": "date-time"},
    "answered": nullable("string", format="date-time", description="null until answered."),
    "end": nullable("string", format="date-time", description=f"{UP}."),
    "duration": {"type": "integer", "description": "Conversation, whole seconds."},
    "wait": {"type": "integer", "description": "Seconds until the answer (or the end)."},
    "recorded": {"type": "boolean", "description": "Whether a recording was made."},
    "rating": nullable("integer"),
    "missed_status": nullable("integer", description="2: called back a missed customer."),
}
LEG = obj(
    {
        "uniqueid": {"type": "string"},
        "channel": {"type": "string"},
        "kind": {"type": "string"},
        "ext": {"type": "string"},
        "start": nullable("string", format="date-time"),
        "answered": nullable("string", format="date-time"),
        "end": nullable("string", format="date-time"),
        "cause": nullable("integer"),
        "dial_status": {"type": ["string", "null"]},
    }
)
EVENT = obj(
    {
        "seq": {"type": "integer"},
        "type": {"type": "string"},
        "at": {"type": "string", "format": "date-time"},
        "ext": {"type": "string"},
        "user": {"type": "string"},
        "user_name": {"type": "string"},
        "second_callid": {"type": ["string", "null"]},
    }
)
USER = obj(
    {
        "login": {"type": "string"},
        "name": {"type": "string"},
        "ext": {"type": "string"},
        "telnum": {"type": "string"},
        "mobile": {"type": "string"},
        "email": {"type": "string"},
        "position": {"type": "string"},
        "source": {"type": "string", "enum": ["pbx", "config", "api"]},
    }
)
MEMBER = obj({"login": {"type": "string"}, "name": {"type": "string"}, "ext": {"type": "string"}})
GROUP = obj(
    {
        "id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["ringgroup", "queue"]},
        "name": {"type": "string"},
        "ext": {"type": "string"},
        "strategy": {"type": "string"},
        "ring_time": {"type": "integer"},
        "members": {"type": "array", "items": MEMBER},
        "source": {"type": "string", "enum": ["pbx", "config", "api"]},
    }
)
NUMBER = obj(
    {
        "telnum": {"type": "string"},
        "name": {"type": "string"},
        "route_type": {"type": "string", "enum": ["user", "group", "ivr", ""]},
        "route_to": {"type": "string"},
        "ivr": {"type": "array", "items": {"type": "object"}},
        "source": {"type": "string", "enum": ["pbx", "config", "api"]},
    }
)
SUBSCRIPTION = obj(
    {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "url": {"type": "string", "description": "A password in it is shown as ***."},
        "profile": {"type": "string"},
        "commands": {"type": "array", "items": {"type": "string"}},
        "direction": {"type": "string", "enum": list(targets.DIRECTIONS)},
        "enabled": {"type": "boolean"},
        "disabled_reason": {"type": "string"},
        "has_token": {"type": "boolean", "description": "Whether a token is sent (never shown)."},
        "signed": {
            "type": "boolean",
            "description": "Whether webhooks are signed (the secret is never shown).",
        },
        "primary": {
            "type": "boolean",
            "description": "The config's [crm]: changed in the config only.",
        },
        "created_at": {"type": "string", "format": "date-time"},
    }
)
SUBSCRIPTION_FIELDS: dict[str, Schema] = {
    "url": text(
        MAX_BODY_TEXT,
        pattern="^https?://[^\\u0000-\\u001f\\u007f-\\u009f]*$",
        description="Where webhooks are POSTed.",
    ),
    "token": text(MAX_BODY_TEXT, description="Sent as `crm_token` and `X-CRM-Token`."),
    "profile": {"type": "string", "enum": ["vpbx", "vpbx-legacy", "json"], "default": "vpbx"},
    "commands": {
        "type": "array",
        "items": {"type": "string", "enum": list(targets.COMMANDS)},
        "minItems": 1,
        "maxItems": MAX_ITEMS,
        "default": list(targets.COMMANDS),
    },
    "direction": {"type": "string", "enum": list(targets.DIRECTIONS), "default": "both"},
    "signing_secret": {
        "type": ["string", "null"],
        "minLength": 1,
        "maxLength": 1000,
        "pattern": TEXT_PATTERN,
        "description": "Standard Webhooks signing: `whsec_` and base64, or any text used "
        "as the key.",
    },
}
SUBSCRIPTION_NAME = text(100, minLength=1, **{"not": {"const": "primary"}})
DEAD_LETTER = obj(
    {
        "id": {"type": "integer"},
        "target": {"type": "string"},
        "callid": {"type": "string"},
        "cmd": {"type": "string"},
        "attempts": {"type": "integer"},
        "last_status": nullable("integer"),
        "last_error": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "webhook_id": {"type": "string"},
    }
)
DIAL_NUMBER = {
    "type": "string",
    "pattern": "^\\+?[0-9]{3,15}$",
    "description": "E.164 (`+` allowed) or a short number.",
}
CLOUD_CALL = obj(
    {
        "call_id": {"type": "string"},
        "type": {"type": "string", "enum": ["inbound", "outbound", "internal"]},
        "caller_id": {"type": "string"},
        "caller_name": {"type": "string"},
        "destination": {"type": "string"},
        "user_name": {"type": "string"},
        "extension": {"type": "string"},
        "group": {"type": "string", "description": "The queue or ring group."},
        "date": {"type": "string", "format": "date-time"},
        "duration": {"type": "integer", "description": "Seconds."},
        "status": {"type": "string", "enum": list(STATUSES)},
    }
)
COUNT = {"type": "integer", "minimum": 0}

SCHEMAS: dict[str, Schema] = {
    "Error": obj({"message": {"type": "string"}}),
    "Call": obj(CALL),
    "CallDetails": obj(
        {
            **CALL,
            "legs": {"type": "array", "items": LEG},
            "events": {"type": "array", "items": EVENT},
        }
    ),
    "CallPage": obj(
        {
            "items": {"type": "array", "items": ref("Call")},
            "offset": COUNT,
            "limit": COUNT,
            "next": nullable(
                "string", description="Pass back as `after` for the next page; null on the last."
            ),
        },
        {"total": COUNT},
    ),
    "User": USER,
    "Group": GROUP,
    "Number": NUMBER,
    "Users": listing("User", total=COUNT),
    "Groups": listing("Group", total=COUNT),
    "Numbers": listing("Number", total=COUNT),
    "Subscription": SUBSCRIPTION,
    "Subscriptions": listing("Subscription"),
    "NewSubscription": obj(
        {"name": SUBSCRIPTION_NAME, "url": SUBSCRIPTION_FIELDS["url"]},
        {k: v for k, v in SUBSCRIPTION_FIELDS.items() if k != "url"},
    ),
    "SubscriptionReplacement": obj(
        {"url": SUBSCRIPTION_FIELDS["url"]},
        {k: v for k, v in SUBSCRIPTION_FIELDS.items() if k != "url"},
    ),
    "DeadLetter": DEAD_LETTER,
    "DeadLetters": listing("DeadLetter", total=COUNT),
    "Redrive": {
        "oneOf": [
            obj(
                {
                    "ids": {
                        "type": "array",
                        "items": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                        "maxItems": MAX_ITEMS,
                    }
                }
            ),
            obj({"all": {"const": True}}),
        ],
        "description": "The dead letters' ids, or `all: true`.",
    },
    "Redriven": obj({"redriven": COUNT}),
    "Dial": obj(
        {
            "employee": text(100, minLength=1, description="Login or extension."),
            "number": DIAL_NUMBER,
        },
        {"clid": {**DIAL_NUMBER, "description": "The caller ID the customer sees."}},
    ),
    "CloudDial": obj(
        {"user": text(100, minLength=1, description="Login or extension."), "number": DIAL_NUMBER}
    ),
    "Dialled": obj({"callid": {"type": "string"}}),
    "CloudCall": CLOUD_CALL,
    "CloudCalls": listing("CloudCall", total=COUNT, offset=COUNT, limit=COUNT),
}

# ---------------------------------------------------------------- operations

BAD = {
    "description": "A bad parameter (the message names it). A request line or header over "
    "8 KiB is refused by the HTTP layer itself, in plain text.",
    "content": {
        "application/json": {"schema": ref("Error")},
        "text/plain": {"schema": {"type": "string"}},
    },
}
AUTH = error("No API key, or one not valid for this dialect or client address.")


def op(
    summary: str,
    tag: str,
    ok: dict[str, Any],
    *,
    params: list[Schema] | None = None,
    body: Schema | None = None,
    errors: dict[str, str] | None = None,
    public: bool = False,
    ok_status: str = "200",
    more: dict[str, Any] | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = {ok_status: ok, **(more or {})}
    if not public:
        responses["400"] = BAD
        responses["401"] = AUTH
    if body is not None:
        responses["400"] = {
            **BAD,
            "description": "A bad parameter or body field (the message names it).",
        }
        responses["413"] = error("The body is larger than 1 MiB.")
        responses["415"] = error("The body is not JSON.")
    for status, why in (errors or {}).items():
        responses[status] = error(why)
    operation: dict[str, Any] = {"summary": summary, "tags": [tag], "responses": responses}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = json_body(body)
    if public:
        operation["security"] = []
    return operation


def _calls_list(summary: str, who: Schema) -> dict[str, Any]:
    return op(
        summary,
        "cloud PBX",
        answer("A page of calls.", ref("CloudCalls")),
        params=[*CLOUD_COMMON, who],
    )


AUDIO = {
    t: {"schema": {"type": "string", "contentMediaType": t}}
    for t in ("audio/wav", "audio/mpeg", "audio/x-gsm", "audio/ogg", "application/octet-stream")
}

PATHS: dict[str, dict[str, Any]] = {
    "/calls": {
        "get": op(
            "Calls, filtered and sorted; paged by offset/limit or by the `next` cursor",
            "calls",
            answer("A page of calls.", ref("CallPage")),
            params=[*CALL_FILTERS, *ORDERING, *PAGING],
        )
    },
    "/calls.csv": {
        "get": op(
            "The calls the filters select as CSV (header row first), streamed",
            "calls",
            {
                "description": "CSV, one call a row, columns as the fields of a call.",
                "content": {"text/csv": {"schema": {"type": "string"}}},
            },
            params=[*CALL_FILTERS, *ORDERING],
        )
    },
    "/calls/{callid}": {
        "get": op(
            "One call with its legs (channels) and CRM events",
            "calls",
            answer("The call.", ref("CallDetails")),
            params=[CALLID],
            errors={"404": "No such call."},
        )
    },
    "/calls/{callid}/recording": {
        "get": op(
            "The call's recording file (HTTP Range requests answered with 206)",
            "calls",
            {
                "description": "The recording (also for a Range header that is not a byte "
                "range: it is ignored).",
                "content": AUDIO,
            },
            params=[CALLID],
            errors={"404": "No such call, no recording, or its file is not there."},
            more={
                "206": {
                    "description": "The part of the recording the Range asked for.",
                    "content": AUDIO,
                },
                "416": answer(
                    "The Range starts past the end of the file.",
                    ref("Error"),
                    **{"Content-Range": "`bytes */<size>`: the file's size."},
                ),
            },
        )
    },
    "/users": {"get": op("Employees", "directory", answer("Every employee.", ref("Users")))},
    "/users/{login}": {
        "get": op(
            "One employee, by login or extension",
            "directory",
            answer("The employee.", ref("User")),
            params=[path("login", {"type": "string"}, "Login or extension.")],
            errors={"404": "No such user."},
        )
    },
    "/groups": {
        "get": op(
            "Ring groups and queues with their members",
            "directory",
            answer("The groups.", ref("Groups")),
            params=[
                query(
                    "kind",
                    {"type": "string", "enum": ["ringgroup", "queue"]},
                    "Only ring groups, or only queues.",
                )
            ],
        )
    },
    "/groups/{id}": {
        "get": op(
            "One ring group or queue with its members",
            "directory",
            answer("The group.", ref("Group")),
            params=[path("id", {"type": "integer"}, "The group's id.")],
            errors={"404": "No such group."},
        )
    },
    "/numbers": {
        "get": op(
            "Company numbers (DIDs) and where they go",
            "directory",
            answer("The numbers.", ref("Numbers")),
        )
    },
    "/numbers/{telnum}": {
        "get": op(
            "One company number",
            "directory",
            answer("The number.", ref("Number")),
            params=[
                path(
                    "telnum", {"type": "string"}, "The number (E.164; `+` and national forms work)."
                )
            ],
            errors={"404": "No such number."},
        )
    },
    "/subscriptions": {
        "get": op(
            "Webhook subscriptions (the config's [crm] as `primary`)",
            "webhooks",
            answer("The subscriptions.", ref("Subscriptions")),
        ),
        "post": op(
            "Add a webhook subscription",
            "webhooks",
            answer("Added.", ref("Subscription"), Location="The subscription's URL."),
            body=ref("NewSubscription"),
            ok_status="201",
            errors={"409": "A subscription of that name exists (PUT replaces it)."},
        ),
    },
    "/subscriptions/{name}": {
        "get": op(
            "One subscription",
            "webhooks",
            answer("The subscription.", ref("Subscription")),
            params=[SUB_NAME],
            errors={"404": "No such subscription."},
        ),
        "put": op(
            "Add or replace the subscription of this name (omitted fields take their defaults)",
            "webhooks",
            answer("Replaced.", ref("Subscription")),
            params=[{**SUB_NAME, "schema": SUBSCRIPTION_NAME}],
            body=ref("SubscriptionReplacement"),
            more={"201": answer("Added.", ref("Subscription"))},
        ),
        "delete": op(
            "Remove a subscription and its undelivered webhooks",
            "webhooks",
            {"description": "Removed."},
            params=[SUB_NAME],
            ok_status="204",
            errors={"404": "No such subscription."},
        ),
    },
    "/subscriptions/{name}/enable": {
        "post": op(
            "Switch a subscription on again (after its receiver answered 410)",
            "webhooks",
            answer("Enabled.", ref("Subscription")),
            params=[SUB_NAME],
            errors={"404": "No such subscription."},
        )
    },
    "/dead-letters": {
        "get": op(
            "Dead letters: webhooks their receiver refused for good, newest first",
            "webhooks",
            answer("Dead letters and how many there are.", ref("DeadLetters")),
            params=[
                query(
                    "limit",
                    {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                    "How many.",
                )
            ],
        )
    },
    "/dead-letters/redrive": {
        "post": op(
            "Send dead letters again (these ids, or all) with a fresh retry window",
            "webhooks",
            answer("How many went back to the queue.", ref("Redriven")),
            body=ref("Redrive"),
        )
    },
    "/dial": {
        "post": op(
            "Click-to-call: ring the employee's phones, then dial the number; the call id at once",
            "click-to-call",
            answer("The call is being placed.", ref("Dialled")),
            body=ref("Dial"),
            ok_status="201",
            errors={"503": "Click-to-call is not available (no AMI link, or standby)."},
        ),
    },
    "/cloud/user-calls": {
        "get": _calls_list(
            "Get user calls: calls these employees took part in",
            query_list("users", SOME_NAME, "Employees: logins or extensions.", required=True),
        )
    },
    "/cloud/queue-calls": {
        "get": _calls_list(
            "Get queue calls",
            query_list(
                "queues", SOME_NAME, "Queues: names, directory ids or queue numbers.", required=True
            ),
        )
    },
    "/cloud/ring-group-calls": {
        "get": _calls_list(
            "Get ring group calls",
            query_list(
                "groups", SOME_NAME, "Ring groups: names, directory ids or numbers.", required=True
            ),
        )
    },
    "/cloud/call": {
        "post": op(
            "Call a number: rings the user's devices, then dials the number",
            "cloud PBX",
            answer("The call is being placed.", ref("Dialled")),
            body=ref("CloudDial"),
            ok_status="201",
            errors={"503": "Click-to-call is not available (no AMI link, or standby)."},
        )
    },
    "/openapi.json": {
        "get": op(
            "This document",
            "documentation",
            answer("OpenAPI 3.1.", {"type": "object"}),
            public=True,
        )
    },
    "/docs": {
        "get": op(
            "This document as a page",
            "documentation",
            {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}},
            public=True,
        )
    },
}


@cache
def _document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "asterisk-crm-bridge native API",
            "version": VERSION,
            "description": (
                "Calls tracked from Asterisk, the directory, webhook subscriptions and dead "
                "letters, click-to-call, and the cloud-PBX style call lists. Every error is "
                'JSON `{"message": ...}`; a 400 names the bad parameter. Authenticate with '
                "an API key (`crm-bridge apikey create`) in `X-API-Key` or as a bearer token."
            ),
        },
        "servers": [{"url": "/api/v1"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "tags": [
            {"name": n}
            for n in (
                "calls",
                "directory",
                "webhooks",
                "click-to-call",
                "cloud PBX",
                "documentation",
            )
        ],
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def document() -> dict[str, Any]:
    """The OpenAPI document (a copy: callers may change it)."""
    return copy.deepcopy(_document())
