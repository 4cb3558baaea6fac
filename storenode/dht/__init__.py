"""Kademlia, sans-IO: ids, routing table, lookup state machine, signed records."""
