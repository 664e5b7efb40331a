"""Exporting an app's data through the SDK: row flattening, format writers, and resumable walks."""
