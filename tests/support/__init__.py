"""Helpers shared by the test modules (import them from here, never from conftest or bench)."""
