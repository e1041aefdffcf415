"""Tests of the emulated metadata server: paths, token shapes, refusals, each platform."""
