"""Tests of the emulator's HTTP plumbing: body limits, faults, hostile clients, the README's route table."""
