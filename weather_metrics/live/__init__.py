"""Live events for WebSockets: what is recorded with each commit, the hub of sockets, the relay, the protocol."""
