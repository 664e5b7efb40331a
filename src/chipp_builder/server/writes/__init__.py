"""The write seam (DESIGN.md, "One road in, one road out"): every change of domain data goes through these
modules, which keep what depends on it (counters, daily rollups, the event feed) in the same transaction."""
