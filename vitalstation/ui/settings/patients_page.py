"""Settings > Patients and beds: add patients and beds; admit, transfer and discharge (a
discharge reverts the patient's own alarm limits; a transfer keeps them). Audited, through the
same operations as ``vitalstation patient|bed|admit|discharge``.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QComboBox, QGroupBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from vitalstation.ui.settings.dialog import SettingsContext
from vitalstation.ui.settings.forms import MessageLine, button, fill_table, make_table, row


class PatientsPage(QWidget):
    """Patients, beds and admissions."""

    def __init__(self, context: SettingsContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.context = context
        self.message = MessageLine(self)
        self.message.setObjectName("patients_message")
        self.patients_table = make_table(("Patient id", "Name", "Bed", "Admitted (UTC)"), self)
        self.patients_table.setObjectName("patients_table")
        self.beds_table = make_table(("Bed", "Ward", "Patient id", "Patient"), self)
        self.beds_table.setObjectName("beds_table")

        add = QGroupBox("Add", self)
        self.patient_id = QLineEdit(add)
        self.patient_id.setObjectName("new_patient_id")
        self.patient_id.setPlaceholderText("e.g. P123")
        self.patient_name = QLineEdit(add)
        self.patient_name.setObjectName("new_patient_name")
        self.bed_label = QLineEdit(add)
        self.bed_label.setObjectName("new_bed_label")
        self.bed_label.setPlaceholderText("e.g. 5N-04")
        self.bed_ward = QLineEdit(add)
        self.bed_ward.setObjectName("new_bed_ward")
        add_layout = QVBoxLayout(add)
        add_layout.addLayout(row(QLabel("Patient id", add), self.patient_id,
                                 QLabel("name", add), self.patient_name,
                                 button("Add patient", self.add_patient, add, "add_patient")))
        add_layout.addLayout(row(QLabel("Bed", add), self.bed_label, QLabel("ward", add),
                                 self.bed_ward, button("Add bed", self.add_bed, add, "add_bed")))

        stay = QGroupBox("Admissions", self)
        self.stay_patient = QComboBox(stay)
        self.stay_patient.setObjectName("stay_patient")
        self.stay_patient.setMinimumWidth(180)
        self.stay_bed = QComboBox(stay)
        self.stay_bed.setObjectName("stay_bed")
        self.stay_bed.setMinimumWidth(120)
        stay_layout = QVBoxLayout(stay)
        stay_layout.addLayout(row(
            QLabel("Patient", stay), self.stay_patient, QLabel("bed", stay), self.stay_bed,
            button("Admit", self.admit, stay, "admit_button"),
            button("Transfer", self.transfer, stay, "transfer_button"),
            button("Discharge", self.discharge, stay, "discharge_button"),
        ))
        note = QLabel("A discharge reverts the patient's own alarm limits; a transfer keeps "
                      "them.", stay)
        note.setWordWrap(True)
        stay_layout.addWidget(note)

        tables = QWidget(self)
        tables_layout = row(self.patients_table, self.beds_table, stretch=False)
        tables.setLayout(tables_layout)
        layout = QVBoxLayout(self)
        layout.addWidget(tables, 1)
        layout.addWidget(add)
        layout.addWidget(stay)
        layout.addWidget(self.message)
        self.refresh()

    def refresh(self, then: str | None = None) -> None:
        """Reloads patients and beds; shows ``then`` afterwards."""
        admin = self.context.admin

        def loaded(result: tuple[Any, Any]) -> None:
            patients, beds = result
            fill_table(self.patients_table, [
                (p.patient_id, p.name, p.bed,
                 p.admitted_at.strftime("%Y-%m-%d %H:%M") if p.admitted_at else "")
                for p in patients
            ])
            fill_table(self.beds_table, [(b.label, b.ward, b.patient_id, b.patient_name)
                                         for b in beds])
            for combo, items in ((self.stay_patient, [p.patient_id for p in patients]),
                                 (self.stay_bed, [b.label for b in beds])):
                current = combo.currentText()
                combo.clear()
                combo.addItems(items)
                if current in items:
                    combo.setCurrentText(current)
            if then:
                self.message.ok(then)
            else:
                self.message.info(f"{len(patients)} patients, {len(beds)} beds.")

        self.context.run(lambda: (admin.patients(), admin.beds()), loaded, self.message,
                         "Loading patients and beds…")

    def _change(self, work: Any, text: Any) -> None:
        def done(result: object) -> None:
            self.refresh(text(result) if callable(text) else text)

        self.context.run(work, done, self.message)

    def add_patient(self) -> None:
        """As ``vitalstation patient add``."""
        patient_id, name = self.patient_id.text().strip(), self.patient_name.text().strip()
        admin = self.context.admin
        self.patient_id.clear()
        self.patient_name.clear()
        self._change(lambda: admin.add_patient(patient_id, name), f"Patient {patient_id} added.")

    def add_bed(self) -> None:
        """As ``vitalstation bed add``."""
        label, ward = self.bed_label.text().strip(), self.bed_ward.text().strip()
        admin = self.context.admin
        self.bed_label.clear()
        self._change(lambda: admin.add_bed(label, ward), f"Bed {label} added.")

    def admit(self) -> None:
        """Admits the chosen patient to the chosen free bed."""
        patient, bed = self.stay_patient.currentText(), self.stay_bed.currentText()
        admin = self.context.admin
        self._change(lambda: admin.admit(patient, bed), f"{patient} admitted to bed {bed}.")

    def transfer(self) -> None:
        """Moves the chosen admitted patient to the chosen free bed, limits kept."""
        patient, bed = self.stay_patient.currentText(), self.stay_bed.currentText()
        admin = self.context.admin
        self._change(lambda: admin.transfer(patient, bed),
                     lambda old: f"{patient} transferred from bed {old} to bed {bed}.")

    def discharge(self) -> None:
        """Discharges the chosen patient (their own limits revert)."""
        patient = self.stay_patient.currentText()
        admin = self.context.admin
        self._change(lambda: admin.discharge(patient),
                     lambda bed: f"{patient} discharged from bed {bed}.")
