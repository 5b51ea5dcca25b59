"""Layer bytes → entries: decompression, the one streamed pass per layer, eStargz tables of contents, base-OS files."""
