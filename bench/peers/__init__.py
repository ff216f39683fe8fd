"""bench-peers: panelboot against the peer tools (scripts/bench-peers)."""
