"""Values and rules, standard library only: the image model, tar entries, references, digests, media types, OS
release parsing and hostile-text helpers.  Nothing here does I/O; everything above in the flow reads these values."""
