"""Tests of `realtime/`."""
