"""SMS gateway adapters, one module per vendor."""
