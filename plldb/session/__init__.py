"""The live link with the helper stack: attach, the WebSocket connection, sessions, identity, claims, payloads."""
