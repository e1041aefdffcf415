"""Talking HTTP: sans-I/O flows and their drivers with the one retry policy (``flows``), the httpx
transport for libraries (``transport``) and the http.client one for one-shot processes
(``light_transport``). Nothing is imported here."""
