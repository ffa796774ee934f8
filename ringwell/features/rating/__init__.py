"""Rating: rate decks (CSV import), longest-prefix match and exact per-call charges."""
