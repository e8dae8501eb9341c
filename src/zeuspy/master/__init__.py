"""The master: one asyncio loop that owns the phase tree (see docs/architecture.md)."""
