"""Service layer: use cases over the database, each taking what it touches as parameters."""
