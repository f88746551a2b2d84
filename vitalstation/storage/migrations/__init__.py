"""Alembic migrations of the station's database."""
