"""IAM Credentials (``iamcredentials.googleapis.com``): tokens and signatures for a service account
to a caller who may act as it (credentials), and regional access boundaries, ``…/allowedLocations``
(access_boundaries)."""
