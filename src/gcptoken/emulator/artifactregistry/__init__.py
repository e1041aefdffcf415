"""Artifact Registry's repositories as clients reach them with Google credentials."""
