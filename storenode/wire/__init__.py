"""The authenticated wire, sans-IO: Noise handshake, encrypted frames, typed messages."""
