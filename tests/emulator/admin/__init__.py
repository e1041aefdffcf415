"""Tests of the emulator console in a real browser."""
