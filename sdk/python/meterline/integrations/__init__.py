"""Wrappers for LLM client libraries: one wrap, and every call is recorded."""
