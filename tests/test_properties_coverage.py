"""The property tests cover every public functional op and every nn layer: each name in
fastconv.functional.__all__ is called as F.<name> in tests/test_properties_*.py, and each layer
class in fastconv.nn.__all__ appears as nn.<Name> there. A new op or layer fails this until its
properties are written. An activation with an ActSpec (fastconv._opinfo.act) counts as
named: test_properties_act.py and test_properties_nn.py build their tables from those specs."""

import inspect
import pathlib
import re

import fastconv.functional as F
from fastconv import nn
from fastconv._opinfo.act import ACTS

_HERE = pathlib.Path(__file__).resolve().parent
# What is not a layer: the base classes and the helper namespaces.
_NOT_LAYERS = {"Module", "Parameter", "init", "utils"}


def _property_sources():
    text = "\n".join(p.read_text() for p in sorted(_HERE.glob("test_properties_*.py"))
                     if p.name != pathlib.Path(__file__).name)
    return text + "".join(f"\nF.{a.name} F.{a.name}_backward nn.{a.module}" for a in ACTS)


def test_properties_cover_every_functional_op():
    text = _property_sources()
    missing = [name for name in F.__all__ if not re.search(rf"\bF\.{name}\b", text)]
    assert not missing, f"functional ops without property tests: {missing}"


def test_properties_cover_every_nn_layer():
    text = _property_sources()
    layers = [name for name in nn.__all__ if name not in _NOT_LAYERS
              and inspect.isclass(getattr(nn, name)) and issubclass(getattr(nn, name), nn.Module)]
    assert len(layers) > 25
    missing = [name for name in layers if not re.search(rf"\bnn\.{name}\b", text)]
    assert not missing, f"nn layers without property tests: {missing}"
