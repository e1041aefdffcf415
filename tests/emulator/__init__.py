"""Tests of the emulator, in folders by the Google service they test; the ones here span services."""
