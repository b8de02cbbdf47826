"""landmarks stage."""
