"""The OpenAPI 3 document of the REST receiver: served at ``GET /api/openapi.json``.

One source: this module builds the document from the domain's field names, units and ranges,
the receiver serves :func:`openapi_json` as it is, and ``docs/openapi.json`` is the same bytes,
written by ``python -m vitalstation.ingest.rest_openapi docs/openapi.json`` (a test checks
they are identical).
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

from vitalstation.domain.payloads import (
    DEFAULT_DEVICE_UNITS,
    DEFAULT_MAX_BATCH,
    INHEALTH_UNIT_FIELDS,
    MAX_DEVICE_ID_CHARS,
    MAX_NOTES_CHARS,
)
from vitalstation.domain.vitals import (
    ACCEPTED_UNITS,
    CANONICAL_UNIT,
    PLAUSIBLE_RANGES,
    VitalKind,
    from_canonical,
)

# The version of this HTTP contract (not of the station): bump it when the contract changes.
API_VERSION = "1.0.0"

VITALS_PATH = "/api/iot/vitals/"
BATCH_PATH = "/api/iot/vitals/batch/"
STATUS_PATH = "/api/iot/status/"
OPENAPI_PATH = "/api/openapi.json"

_UNIT_NAMES = {
    "Cel": "°C", "[degF]": "°F", "[lb_av]": "lbs", "kg": "kg", "mg/dL": "mg/dL",
    "mmol/L": "mmol/L", "/min": "/min", "mm[Hg]": "mmHg", "%": "%",
}
_VITAL_TEXT = {
    VitalKind.HEART_RATE: "Heart rate",
    VitalKind.SYSTOLIC_BP: "Systolic blood pressure (send with the diastolic)",
    VitalKind.DIASTOLIC_BP: "Diastolic blood pressure (send with the systolic; lower than it)",
    VitalKind.TEMPERATURE: "Body temperature, in `temperature_unit`",
    VitalKind.RESPIRATORY_RATE: "Respiratory rate",
    VitalKind.SPO2: "Oxygen saturation",
    VitalKind.GLUCOSE: "Blood glucose, in `glucose_unit`",
    VitalKind.WEIGHT: "Body weight, in `weight_unit`",
}
_UNIT_SPELLINGS = {
    VitalKind.TEMPERATURE: ["F", "C"],
    VitalKind.GLUCOSE: ["mg/dL", "mmol/L"],
    VitalKind.WEIGHT: ["lbs", "kg"],
}


def _bound(value: float) -> float | int:
    rounded = round(value, 1)
    return int(rounded) if rounded == int(rounded) else rounded


def _vital_schema(kind: VitalKind) -> dict[str, Any]:
    rng = PLAUSIBLE_RANGES[kind]
    units = ACCEPTED_UNITS.get(kind, (CANONICAL_UNIT[kind],))
    ranges = []
    for unit in sorted(units, key=lambda u: u != DEFAULT_DEVICE_UNITS[kind]):
        low, high = sorted((from_canonical(kind, rng.low, unit),
                            from_canonical(kind, rng.high, unit)))
        ranges.append(f"{_bound(low)}–{_bound(high)} {_UNIT_NAMES[unit.value]}")
    schema: dict[str, Any] = {
        "type": "number",
        "nullable": True,
        "description": (
            f"{_VITAL_TEXT[kind]}. A JSON number (not a string); null or absent: not measured. "
            f"Plausible range: {', '.join(ranges)}."
        ),
    }
    if len(units) == 1:
        schema["minimum"] = _bound(rng.low)
        schema["maximum"] = _bound(rng.high)
    return schema


def _reading_properties() -> dict[str, Any]:
    props: dict[str, Any] = {
        "device_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_DEVICE_ID_CHARS,
            "description": "The device's registered id; must be the API key's device (else 403).",
            "example": "DEV001",
        },
        "timestamp": {
            "type": "string",
            "format": "date-time",
            "description": (
                "When the device measured, ISO-8601 (e.g. 2025-11-17T10:30:00Z; without an "
                "offset: UTC). Required: a missing or unparsable timestamp is refused (400), "
                "never replaced by the receipt time. At most 5 minutes in the future."
            ),
            "example": "2025-11-17T10:30:00Z",
        },
    }
    for kind in VitalKind:
        props[kind.value] = _vital_schema(kind)
        unit_field = INHEALTH_UNIT_FIELDS.get(kind)
        if unit_field is not None:
            default, *others = _UNIT_SPELLINGS[kind]
            props[unit_field] = {
                "type": "string",
                "nullable": True,
                "description": (
                    f"Unit of `{kind.value}`: {default} (the default when absent) or "
                    f"{', '.join(others)}; any case."
                ),
                "example": default,
            }
    for name, text in (("signal_quality", "Signal quality"), ("battery_level", "Battery level")):
        props[name] = {
            "type": "number", "nullable": True, "minimum": 0, "maximum": 100,
            "description": f"{text} in percent (kept with the reading and on the device).",
        }
    props["notes"] = {
        "type": "string", "nullable": True, "maxLength": MAX_NOTES_CHARS,
        "description": "Free text kept with the reading.",
    }
    return props


def _error_response(description: str, example: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Error"},
                "example": {"success": False, "error": example},
            }
        },
    }


def _retry(description: str, example: str) -> dict[str, Any]:
    response = _error_response(description, example)
    response["headers"] = {
        "Retry-After": {
            "description": "Seconds to wait before sending again.",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    return response


_COMMON_ERRORS: dict[str, Any] = {
    "401": _error_response(
        "Missing, malformed, unknown, revoked or expired API key (one answer for all).",
        "Invalid API key",
    ),
    "429": _retry("Over the key's rate limit.", "Rate limit exceeded: 600 requests per minute"),
}
_POST_ERRORS: dict[str, Any] = {
    "400": _error_response(
        "Invalid JSON, a missing or invalid field (each named in `errors`), no vital sign, or a "
        "device not assigned to a bed or patient. Nothing was stored.",
        "Invalid reading: heart_rate: must be a number, not a string",
    ),
    **_COMMON_ERRORS,
    "403": _error_response(
        "The body's device_id is not the key's device, the key may not write vitals, or the "
        "device is retired or inactive.",
        "device_id 'DEV002' does not match the API key's device 'DEV001'",
    ),
    "411": _error_response(
        "No Content-Length (chunked bodies are not accepted).", "Content-Length required",
    ),
    "413": _error_response(
        "The body is larger than the station's limit (refused before it is read), or a batch "
        "holds more readings than allowed.",
        "Request body of 5000000 bytes is over the limit of 1048576 bytes",
    ),
    "415": _error_response(
        "The body is not declared as JSON (Content-Type: application/json, UTF-8).",
        "Content-Type must be application/json",
    ),
    "503": _retry(
        "The station is busy or its database did not commit: nothing was acknowledged; send "
        "the same request again later (re-sending a stored reading never duplicates it).",
        "The station is busy; try again shortly",
    ),
}


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of the receiver (a fresh copy is not needed: never mutate)."""
    reading_props = _reading_properties()
    batch_item_props = {k: v for k, v in reading_props.items() if k != "device_id"}
    batch_item_props = {
        "device_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_DEVICE_ID_CHARS,
            "description": "Optional; when given, must equal the batch's (and the key's) device.",
        },
        **batch_item_props,
    }
    error_map = {
        "type": "object",
        "additionalProperties": {"type": "string"},
        "description": "Field name → why it was refused.",
    }
    schemas: dict[str, Any] = {
        "Reading": {
            "type": "object",
            "required": ["device_id", "timestamp"],
            "properties": reading_props,
            "description": (
                "One reading: at least one vital sign. Unknown fields are ignored. Vitals are "
                "stored in canonical units with the sent value and unit kept."
            ),
        },
        "BatchReading": {
            "type": "object",
            "required": ["timestamp"],
            "properties": batch_item_props,
        },
        "Batch": {
            "type": "object",
            "required": ["readings"],
            "properties": {
                "device_id": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_DEVICE_ID_CHARS,
                    "description": (
                        "The device's registered id (the key's device). Without it, every "
                        "reading must carry its own device_id."
                    ),
                    "example": "DEV001",
                },
                "readings": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": DEFAULT_MAX_BATCH,
                    "items": {"$ref": "#/components/schemas/BatchReading"},
                    "description": (
                        "Each reading is validated on its own: valid ones are stored even when "
                        f"others are refused. At most {DEFAULT_MAX_BATCH} by default "
                        "(rest.max_batch_readings); more is a 413."
                    ),
                },
            },
        },
        "VitalsCreated": {
            "type": "object",
            "required": ["success", "message", "vital_sign_id", "alerts_triggered", "timestamp"],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "message": {"type": "string", "example": "Vital signs received successfully"},
                "vital_sign_id": {
                    "type": "integer",
                    "description": (
                        "Id of the reading's first stored vital. Sending the same reading "
                        "again answers with the same id and stores nothing new."
                    ),
                },
                "alerts_triggered": {"type": "integer", "minimum": 0},
                "timestamp": {
                    "type": "string", "format": "date-time",
                    "description": "The reading's measurement time (UTC).",
                },
            },
        },
        "BatchResult": {
            "type": "object",
            "required": [
                "success", "message", "total_readings", "processed", "failed",
                "vitals_created", "alerts_triggered", "errors",
            ],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "message": {"type": "string", "example": "Batch submitted successfully"},
                "total_readings": {"type": "integer"},
                "processed": {
                    "type": "integer",
                    "description": "Readings now safely stored (new or stored before).",
                },
                "failed": {"type": "integer"},
                "duplicates": {
                    "type": "integer", "description": "Of the processed, those stored before.",
                },
                "vitals_created": {
                    "type": "array", "items": {"type": "integer"},
                    "description": "The record id of each processed reading, in order.",
                },
                "alerts_triggered": {"type": "integer", "minimum": 0},
                "errors": {
                    "type": "object",
                    "additionalProperties": error_map,
                    "description": "Index in `readings` → field → why that reading was refused.",
                },
            },
        },
        "DeviceStatus": {
            "type": "object",
            "required": [
                "success", "device_id", "device_name", "device_type", "is_active",
                "patient_assigned", "patient_id", "api_key_valid", "last_reading",
            ],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "device_id": {"type": "string", "example": "DEV001"},
                "device_name": {"type": "string", "example": "Smart BP Monitor"},
                "device_type": {"type": "string", "example": "Blood Pressure Monitor"},
                "is_active": {
                    "type": "boolean",
                    "description": "False when the device is inactive or retired (refused).",
                },
                "patient_assigned": {"type": "boolean"},
                "patient_id": {
                    "type": "string", "nullable": True,
                    "description": "The hospital's id of the device's patient now.",
                    "example": "P123",
                },
                "api_key_valid": {"type": "boolean", "enum": [True]},
                "last_reading": {
                    "type": "string", "format": "date-time", "nullable": True,
                    "description": "Measurement time of the device's newest stored reading.",
                },
            },
        },
        "Error": {
            "type": "object",
            "required": ["success", "error"],
            "properties": {
                "success": {"type": "boolean", "enum": [False]},
                "error": {"type": "string"},
                "errors": {
                    "type": "object",
                    "description": (
                        "Field → reason, when fields are known; for a batch whose readings "
                        "were all refused: index → field → reason."
                    ),
                },
            },
        },
    }

    def ok(ref: str, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
        }

    def body(ref: str) -> dict[str, Any]:
        return {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
        }

    paths: dict[str, Any] = {
        VITALS_PATH: {
            "post": {
                "operationId": "submitVitals",
                "summary": "Submit one reading",
                "description": (
                    "Answered only once the reading is committed to the station's database."
                ),
                "requestBody": body("Reading"),
                "responses": {"200": ok("VitalsCreated", "Stored (or stored before)."),
                              **_POST_ERRORS},
            }
        },
        BATCH_PATH: {
            "post": {
                "operationId": "submitBatch",
                "summary": "Submit many readings of one device",
                "description": (
                    "Partial success: valid readings are stored and counted, refused ones are "
                    "listed by index in `errors`. When no reading is valid the answer is 400."
                ),
                "requestBody": body("Batch"),
                "responses": {"200": ok("BatchResult", "Valid readings stored."),
                              **_POST_ERRORS},
            }
        },
        STATUS_PATH: {
            "get": {
                "operationId": "deviceStatus",
                "summary": "The key's device: state, patient, newest reading",
                "description": "Any valid key may ask, whatever its permissions.",
                "responses": {"200": ok("DeviceStatus", "The device's status."),
                              **_COMMON_ERRORS,
                              "503": _POST_ERRORS["503"]},
            }
        },
        "/api/iot/alerts/{alert_id}/response": {
            "post": {
                "operationId": "answerAlert",
                "summary": "Record the patient's answer to an alarm's question",
                "description": (
                    "Stage 1 of an escalation asks the patient whom they want; the bedside "
                    "device answers with its key. The alarm must be its patient's. The seed's "
                    '`{"action": "approve_doctor"}` is accepted too.'
                ),
                "parameters": [{"name": "alert_id", "in": "path", "required": True,
                                "schema": {"type": "integer", "minimum": 1}}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["answer"],
                    "properties": {
                        "answer": {"type": "string",
                                   "enum": ["doctor", "nurse", "ems", "all", "declined"]},
                        "device_id": {"type": "string",
                                      "description": "If given, the key's device."},
                    },
                }}}},
                "responses": {
                    "200": {"description": "Recorded; the chain notifies the chosen roles.",
                            "content": {"application/json": {"schema": {
                                "type": "object",
                                "properties": {
                                    "success": {"type": "boolean", "enum": [True]},
                                    "alert_id": {"type": "integer"},
                                    "answer": {"type": "string"},
                                    "stage": {"type": "string"},
                                    "notified": {"type": "array", "items": {"type": "string"}},
                                },
                            }}}},
                    **_POST_ERRORS,
                    "403": _error_response(
                        "The key may not write, the device is retired or inactive, or the "
                        "alarm is not its patient's.", "Alarm 7 is not for the patient device "
                        "DEV001 reports for"),
                    "404": _error_response("No open alarm with that id.", "No open alarm 7"),
                    "409": _error_response("The alarm's escalation no longer waits for the "
                                           "patient.", "no escalation in progress for alarm"),
                },
            }
        },
        OPENAPI_PATH: {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "VitalStation REST receiver",
            "version": API_VERSION,
            "description": (
                "Bedside devices send vital signs to the ward's central station. Compatible "
                "with the InHealth IoT API (same paths, fields, Bearer keys and answers), with "
                "strict validation: every refused field is named in `errors`. Errors are "
                '`{"success": false, "error": "...", "errors": {field: reason}}`. 404 for an '
                "unknown path, 405 (with Allow) for a wrong method."
            ),
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "`Authorization: Bearer vs_XXXXXXXX_...`: a device key issued with "
                        "`vitalstation device key create DEVICE --name NAME`."
                    ),
                }
            },
            "schemas": schemas,
        },
    }


@cache
def openapi_json() -> bytes:
    """The document as served and as kept in ``docs/openapi.json``."""
    return (json.dumps(openapi_document(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def main(argv: list[str] | None = None) -> int:
    """Write the document to the path given (``docs/openapi.json``), or to stdout."""
    args = sys.argv[1:] if argv is None else argv
    if args:
        Path(args[0]).write_bytes(openapi_json())
    else:
        sys.stdout.buffer.write(openapi_json())
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
