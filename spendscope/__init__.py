"""SpendScope."""
