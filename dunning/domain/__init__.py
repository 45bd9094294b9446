"""Pure domain logic: no I/O, nothing but the standard library and babel-free arithmetic."""
