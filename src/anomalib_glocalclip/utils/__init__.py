"""Plumbing shared by the package: atomic file writes, logging to a file, one-line error descriptions.

Each module imports only the standard library, so the command-line parsers can use them without torch.
"""
