"""Collection agency adapters: place an account with an agency, and recall it."""
