"""Dataset converters: one module per dataset, raw layout as downloaded -> schema samples.

``CONVERTERS`` maps the names accepted by ``humanbench convert`` to converter classes
(see :mod:`humanbench.loaders.base` for the contract).
"""

from __future__ import annotations

from humanbench.loaders.base import Converter

# One import per dataset module, sorted.
from humanbench.loaders.agora import AgoraConverter
from humanbench.loaders.ehf import EHFConverter
from humanbench.loaders.pw3d import PW3DConverter
from humanbench.loaders.ubody import UBodyConverter
from humanbench.loaders.wild import WildConverter
from humanbench.loaders.zju_mocap import ZJUMocapConverter

CONVERTERS: dict[str, type[Converter]] = {
    # "name": ConverterClass, sorted by name.
    "3dpw": PW3DConverter,
    "agora": AgoraConverter,
    "ehf": EHFConverter,
    "ubody": UBodyConverter,
    "wild": WildConverter,
    "zju-mocap": ZJUMocapConverter,
}
