"""Manifest and config bytes from a source → a verified, frozen :class:`~ociinspect.model.image.Image`: the loader,
the uncompressed-size rules and the one index-nesting rule."""
