"""The Zeus wire protocol: framing (wire.py) and message types (messages.py).

See docs/protocol.md."""
