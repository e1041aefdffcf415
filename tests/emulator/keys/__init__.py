"""Tests of the published keys: service accounts' keys and certificates, IAP, Firebase, discovery."""
