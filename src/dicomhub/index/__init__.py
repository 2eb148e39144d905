"""The SQL index: schema, engine, repository, C-FIND matching and the change log."""
