"""Reliability and security harness (issue 7): faults through the CLI, credential safety, fuzzing, load."""
