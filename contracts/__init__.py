"""Deterministic contracts (token, registry, storage, trade): pure functions
``apply(state, tx, ctx) -> state``. Built by issue 4; nothing here yet."""
