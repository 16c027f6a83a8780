"""The one compatibility shim genimg needs to import gfpgan on a modern torchvision.

gfpgan 1.3.8 imports basicsr 1.4.2, whose ``basicsr/data/degradations.py`` does
``from torchvision.transforms.functional_tensor import rgb_to_grayscale``.
torchvision 0.17 removed that private module; the same function lives in the
public ``torchvision.transforms.functional``. Rather than pin an old torchvision
or patch files in site-packages, we register a stand-in module that forwards to
the public one, and only when the real module is missing, so an old torchvision
keeps its own. Nothing else is patched.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

#: The module torchvision removed and basicsr still imports.
REMOVED_MODULE = "torchvision.transforms.functional_tensor"


def _stand_in() -> types.ModuleType:
    """A module whose attributes are those of ``torchvision.transforms.functional``."""
    functional = importlib.import_module("torchvision.transforms.functional")
    module = types.ModuleType(REMOVED_MODULE, "genimg stand-in: forwards to " + functional.__name__)

    def __getattr__(name: str) -> object:  # PEP 562: looked up lazily, on use
        return getattr(functional, name)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    module.rgb_to_grayscale = functional.rgb_to_grayscale  # type: ignore[attr-defined]  # basicsr
    return module


def ensure_gfpgan_importable() -> None:
    """Make ``import gfpgan`` work: install the stand-in if torchvision lacks the module.

    Idempotent; imports torchvision (call it only where torch is about to be used).
    """
    if REMOVED_MODULE in sys.modules:
        return
    if importlib.util.find_spec(REMOVED_MODULE) is not None:
        return  # an older torchvision that still ships it: use the real one
    module = _stand_in()
    sys.modules[REMOVED_MODULE] = module
    transforms = importlib.import_module("torchvision.transforms")
    transforms.functional_tensor = module  # type: ignore[attr-defined]
