"""The index folder: passages, manifest, retriever families (plug-ins), build and checks.

- :mod:`odqa.index.store`: :class:`Index` (an opened index) and :func:`load_index`;
- :mod:`odqa.index.build`: :func:`build_index` and :class:`BuildOptions`;
- :mod:`odqa.index.families`: the :class:`Family` protocol and the ``FAMILIES`` registry;
- :mod:`odqa.index.manifest`: ``manifest.json`` read and validated;
- :mod:`odqa.index.passages`: the passage store;
- :mod:`odqa.index.check`: ``odqa info --check``.
"""
