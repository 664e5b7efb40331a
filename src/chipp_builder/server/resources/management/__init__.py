"""Operator endpoints under /api/applications: apps and their builder keys, guarded by CHIPP_ADMIN_TOKEN."""
