"""The trio shells: serve the wire, connect and pool, RPC, the DHT service."""
