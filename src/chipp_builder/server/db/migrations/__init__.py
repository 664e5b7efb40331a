"""Alembic migrations for every backend."""
