"""Database access: engine creation, the schema, migrations."""
