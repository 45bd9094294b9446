"""Print-and-mail letter gateway adapters, one module per vendor."""
