"""Resource Manager (``cloudresourcemanager.googleapis.com``): the project lookup by number (projects)."""
