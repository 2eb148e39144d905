"""The REST API under ``/api``: the archive, the workflow services and the server's state."""
