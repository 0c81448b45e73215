"""Lowering: a checked spec becomes what backends print (kernel, three-address code, derivation)."""
