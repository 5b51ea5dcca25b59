"""Analyzers: pure functions over the model (and layer scans).  No I/O, no network, no sources.

- :mod:`ociinspect.analyzers.waste` — dive-compatible efficiency and wasted bytes, duplicate files.
- :mod:`ociinspect.analyzers.sharing` — shared vs unique bytes across images, common bases.
- :mod:`ociinspect.analyzers.vm` — the VM-image-size equivalent, with its assumptions in the result.
"""
