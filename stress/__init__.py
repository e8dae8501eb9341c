"""The stress suite (docs/architecture.md, Trust): fuzz, faults, soak, reload under load."""
