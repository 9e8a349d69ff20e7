"""Live events across processes: ``publish`` (NOTIFY in the changing transaction), ``topics`` (what a
notice concerns) and the per-process ``bus`` (one LISTEN connection fanned out to subscribers)."""
