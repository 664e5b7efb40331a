"""Reference implementations kept only to check the fast ones: each answers from the raw rows, through the engine."""
