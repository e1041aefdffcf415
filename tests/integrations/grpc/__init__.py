"""gcptoken.integrations.grpc against a real grpcio server on loopback."""
