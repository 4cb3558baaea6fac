"""Fakes and helpers for tests: they ship with the code so any test can use them."""
