"""Containers and shape-only layers: Sequential, Identity, Flatten."""

import math
import numbers
from collections import OrderedDict

from .._arrays import is_array
from .module import Module, backward_params_chain


class Sequential(Module):
    """Runs its children in order; backward runs them in reverse (composition, no tape).

    A module instance may appear once: its backward uses what its last forward kept, so one
    instance in two places (a shared ReLU, as some PyTorch code writes) would give wrong
    gradients; pass a copy of it instead. Sequential(OrderedDict([("conv", ...), ...])) names
    the children (the keys of state_dict), as torch's. Indexing, slicing (a new Sequential of
    the same modules), assignment, deletion (the rest renumbered), append, insert and extend
    are PyTorch's (a slice keeps the children's names, as torch's)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            self._fill(modules[0].items())
        else:
            self._fill(_numbered(modules))

    def _fill(self, named):
        """The children, as (name, module) pairs in order, in place of the present ones."""
        named = list(named)
        first = {}
        for i, (name, m) in enumerate(named):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {name} is a {type(m).__name__}, not a "
                                "Module")
            j = first.setdefault(id(m), i)
            if j != i:
                raise ValueError(f"Sequential: the module at {i}, {type(m).__name__}, is also at "
                                 f"{j}: its backward keeps one forward's input, pass a copy")
        for name in list(self._modules):
            delattr(self, name)
        for name, m in named:
            self.add_module(name, m)

    def __len__(self):
        return len(self._modules)

    def __getitem__(self, i):
        if isinstance(i, slice):  # the same modules under their names here, as torch's
            part = Sequential()
            for name, m in list(self._modules.items())[i]:
                setattr(part, name, m)
            return part
        return list(self._modules.values())[i]

    def __setitem__(self, i, module):
        """Replace child i in place (model[-1] = nn.Linear(...) swaps the head)."""
        if not isinstance(module, Module):
            raise TypeError(f"Sequential: can only hold Modules, got {type(module).__name__}")
        names, children = list(self._modules), list(self._modules.values())
        i = range(len(names))[i]
        if any(module is other for j, other in enumerate(children) if j != i):
            raise ValueError(f"Sequential: {type(module).__name__} is already in this "
                             "Sequential: its backward keeps one forward's input, pass a copy")
        setattr(self, names[i], module)  # the child's name and place kept, as PyTorch

    def __delitem__(self, i):
        children = list(self._modules.values())
        del children[i]
        self._fill(_numbered(children))

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        return self.extend([module])

    def insert(self, index, module):
        if not isinstance(module, Module):
            raise TypeError(f"Sequential.insert: expected a Module, got {type(module).__name__}")
        children = list(self._modules.values())
        if not -len(children) <= index <= len(children):
            raise IndexError(f"Sequential.insert: index {index} out of range for "
                             f"{len(children)} modules")
        children.insert(index, module)
        self._fill(_numbered(children))
        return self

    def extend(self, modules):
        """Each module added under the next number, the present names kept (a named
        Sequential's keys stay), as torch's append."""
        named = list(self._modules.items())
        named += [(str(len(named) + i), m) for i, m in enumerate(modules)]
        if len({name for name, _ in named}) < len(named):
            # A slice's numbers ("1", "2") collide with the next ones, which torch's append
            # would overwrite: numbered afresh instead.
            named = _numbered(m for _, m in named)
        self._fill(named)
        return self

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, dout):
        for m in reversed(self._modules.values()):
            dout = m.backward(dout)
        return dout

    def backward_params(self, dout):
        backward_params_chain(self._modules.values(), dout)


def _numbered(modules):
    return [(str(i), m) for i, m in enumerate(modules)]


class Identity(Module):
    """Returns its input; takes and ignores any arguments, as torch.nn.Identity."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x

    def backward(self, dout):
        return dout


class Flatten(Module):
    """Flattens dims start_dim..end_dim into one, as torch.nn.Flatten (default: all but N)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

    def _dim(self, name, x):
        dim, ndim = getattr(self, name), max(x.ndim, 1)
        if isinstance(dim, bool) or not isinstance(dim, numbers.Integral):
            raise TypeError(f"{self._name()}: {name} must be an int, got {dim!r}")
        if not -ndim <= dim < ndim:
            raise ValueError(f"{self._name()}: {name} {dim} is out of range for input of shape "
                             f"{x.shape}")
        return dim % ndim

    def forward(self, x):
        if not is_array(x):
            raise TypeError(f"{self._name()} expected a numpy.ndarray or cupy.ndarray input, "
                            f"got {type(x).__module__}.{type(x).__qualname__}")
        self._shape = x.shape
        start, end = self._dim("start_dim", x), self._dim("end_dim", x)
        if x.ndim == 0:
            return x.reshape(1)  # torch.flatten of a 0-d tensor: one element, 1-D
        if start > end:
            raise ValueError(f"{self._name()}: start_dim comes after end_dim for input of shape "
                             f"{x.shape}")
        # the merged size itself, not -1, which NumPy cannot infer when a size is 0
        return x.reshape(x.shape[:start] + (math.prod(x.shape[start:end + 1]),) +
                         x.shape[end + 1:])

    def backward(self, dout):
        return dout.reshape(self._shape)
