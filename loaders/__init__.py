"""Dataset converters: one module per dataset, raw layout as downloaded -> schema samples.

``CONVERTERS`` maps the names accepted by ``humanbench convert`` to converter classes
(see :mod:`humanbench.loaders.base` for the contract).
"""

from __future__ import annotations

from humanbench.loaders.base import Converter

# One import per dataset module, sorted.
from humanbench.loaders.ehf import EHFConverter
from humanbench.loaders.ubody import UBodyConverter

CONVERTERS: dict[str, type[Converter]] = {
    # "name": ConverterClass, sorted by name.
    "ehf": EHFConverter,
    "ubody": UBodyConverter,
}
