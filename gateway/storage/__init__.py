"""Storage: the only package that speaks SQL. Functions take and return plain values."""
