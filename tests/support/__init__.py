"""Test support: an independent validation generator and the accuracy report."""
