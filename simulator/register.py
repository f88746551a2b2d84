"""``--register``: the simulated ward in the station's register, idempotently.

For bed n (1-based): patient ``P-SIM-nn`` ("Simulated patient nn"), bed ``SIM-nn`` (ward
``SIM``), the patient admitted to the bed, device ``SIM-BSM-nn`` assigned to the bed. What
exists already is left as it is, so re-running never fails; a bed occupied by a patient of
the hospital, or a device assigned elsewhere by an admin, is reported and not touched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from simulator.models import device_id_for
from vitalstation.domain.errors import UserError

__all__ = ["SIM_WARD", "RegisterResult", "bed_label_for", "patient_id_for", "register_beds"]

SIM_WARD = "SIM"
ACTOR = "vitalstation-sim"


def patient_id_for(bed: int) -> str:
    """The simulated patient of bed ``bed`` (1-based): ``P-SIM-01`` ..."""
    return f"P-SIM-{bed:02d}"


def bed_label_for(bed: int) -> str:
    """The simulated bed's label: ``SIM-01`` ..."""
    return f"SIM-{bed:02d}"


@dataclass(slots=True)
class RegisterResult:
    """What ``register_beds`` created, and what it left alone and why."""

    created: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def register_beds(
    registry, beds: int, *, at: datetime, device_type: str = "", actor: str = ACTOR
) -> RegisterResult:
    """Register ``beds`` simulated beds in ``registry`` (a ``Store.registry``) as of ``at``.

    ``at`` is the admission and assignment time: give one no later than the first reading
    the run will send (readings belong to the patient in the bed at measurement time).
    """
    result = RegisterResult()
    patients = {p.patient_id: p for p in registry.list_patients()}
    bed_rows = {b.label: b for b in registry.list_beds()}
    devices = {d.device_id: d for d in registry.list_devices()}
    for n in range(1, beds + 1):
        patient, bed, device = patient_id_for(n), bed_label_for(n), device_id_for(n)
        if patient not in patients:
            registry.add_patient(patient, f"Simulated patient {n:02d}", actor=actor, at=at)
            result.created.append(f"patient {patient}")
        if bed not in bed_rows:
            registry.add_bed(bed, SIM_WARD, actor=actor, at=at)
            result.created.append(f"bed {bed}")
        occupant = bed_rows[bed].patient_id if bed in bed_rows else None
        where = patients[patient].bed if patient in patients else None
        if occupant == patient:
            pass
        elif occupant is not None:
            result.notes.append(f"bed {bed} is occupied by patient {occupant}: not admitting")
        elif where is not None:
            result.notes.append(f"patient {patient} is in bed {where}: not admitting")
        else:
            _try(result, lambda p=patient, b=bed: registry.admit(p, b, actor=actor, at=at),
                 f"admitted {patient} to {bed}")
        if device not in devices:
            registry.add_device(
                device, name=f"Simulated bedside monitor {n:02d}", device_type=device_type,
                actor=actor, at=at,
            )
            result.created.append(f"device {device}")
            assigned = None
        else:
            assigned = devices[device].bed or devices[device].patient_id
        if assigned is None:
            _try(result, lambda d=device, b=bed: registry.assign_device(
                d, bed_label=b, actor=actor, at=at), f"assigned {device} to {bed}")
        elif assigned != bed:
            result.notes.append(f"device {device} is assigned to {assigned}: not reassigning")
    return result


def _try(result: RegisterResult, action, done: str) -> None:
    try:
        action()
    except UserError as exc:
        result.notes.append(str(exc))
    else:
        result.created.append(done)
