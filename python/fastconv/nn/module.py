"""Module: the explicit forward/backward layer API (Torch7-shaped, no autograd tape).

``forward(x)`` returns y and keeps what backward needs; ``backward(dy)`` returns dx and
accumulates into the parameters' ``.grad``. A module keeps only its last forward's input: one
instance called twice in a forward (a shared layer) would backpropagate through the second call
twice, so Sequential refuses one in two places and a hand-written forward needs two instances.
Parameters and sub-modules assigned as attributes are registered in assignment order, which
fixes the order of ``parameters()`` and the PyTorch-style keys of ``state_dict()``
("features.0.weight", "bn.running_mean", ...).
"""

import contextlib
import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Mapping, MutableMapping

import numpy as np

from .._arrays import (c_contiguous, device_of, shared_view, is_array, module_of, to_device,
                       to_numpy, torch_spelled, writable)
from .parameter import Parameter


class Module:
    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                                 "before assigning attributes")
        if name in self._parameters and value is not None and not isinstance(value, Parameter):
            # as torch: an array here would quietly stop being trained and saved
            raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} as "
                            f"parameter {name!r} (a Parameter or None expected; set "
                            f"{name}.data to change its values)")
        if name in self._modules and value is not None and not isinstance(value, Module):
            raise TypeError(f"{type(self).__name__}: cannot assign a {type(value).__name__} as "
                            f"child module {name!r} (a Module or None expected)")
        # None keeps a parameter's or a child's slot (as torch): what is assigned later takes
        # it back, in its place.
        if isinstance(value, Parameter) or (value is None and name in self._parameters):
            target = self._parameters
        elif isinstance(value, Module) or (value is None and name in self._modules):
            target = self._modules
        else:
            # A plain value assigned to a buffer's name replaces the buffer, as in PyTorch.
            target = self._buffers if name in self._buffers else None
        for registry in (self._parameters, self._modules, self._buffers):
            if registry is not target:
                registry.pop(name, None)
        if target is not None:
            # Re-assigning keeps the entry's place: a replaced child runs where the old one did.
            target[name] = True if target is self._buffers else value
        object.__setattr__(self, name, value)

    def __getattr__(self, name):
        # Reached only for a missing attribute: a private one is most often what a forward
        # keeps for its backward, read by a backward called first.
        if name.startswith("_") and not name.startswith("__"):
            raise AttributeError(f"{type(self).__name__} has no {name} (kept by forward(): was "
                                 "backward() called before it?)")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        # as PyTorch: deleting a parameter, child or buffer unregisters it too
        for registry in (self._parameters, self._modules, self._buffers):
            registry.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name, array, persistent=True):
        """A non-trainable array (or None) saved in state_dict (batch-norm running statistics),
        unless persistent=False, as PyTorch's."""
        owner = type(self).__name__
        if not isinstance(name, str):
            raise TypeError(f"{owner}.register_buffer: a buffer name must be a str, got "
                            f"{type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{owner}.register_buffer: a buffer name must be non-empty and "
                           f"without '.', got {name!r}")
        if name not in self._buffers and (name in self.__dict__ or name in self._parameters
                                          or name in self._modules):
            raise KeyError(f"{owner}.register_buffer: attribute '{name}' already exists")
        if array is not None and not is_array(array):
            raise TypeError(f"{owner}.register_buffer: {name!r} must be an array or None, got "
                            f"{type(array).__name__}")
        object.__setattr__(self, name, array)
        self._buffers[name] = True
        transient = self.__dict__.setdefault("_non_persistent", set())
        (transient.discard if persistent else transient.add)(name)

    def _persistent_buffers(self):
        transient = self.__dict__.get("_non_persistent", ())
        return [b for b in self._buffers if b not in transient]

    # -- computation --------------------------------------------------------------------
    def forward(self, x):
        raise NotImplementedError(f"{type(self).__name__} has no forward")

    def backward(self, dout):
        raise NotImplementedError(f"{type(self).__name__} has no backward")

    def backward_params(self, dout):
        """backward(dout) for a caller that needs only the parameters' gradients, not the
        input's (a training step, whose input is data); returns None. As PyTorch's autograd
        leaves out what no trainable parameter needs, the layers that know how leave out the
        input gradient (convolution, linear), and Sequential and the model zoo's networks
        also every layer before their first trainable parameter (a frozen backbone's
        backward is not run at all). Any other module runs backward and drops its result."""
        self.backward(dout)

    def __call__(self, *args, **kwargs):
        pre = self.__dict__.get("_forward_pre_hooks") or {}
        post = self.__dict__.get("_forward_hooks") or {}
        if not pre and not post:
            return self._named_call(args, kwargs)
        for hook in list(pre.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        output = self._named_call(args, kwargs)
        for hook in list(post.values()):
            result = hook(self, args, output)
            if result is not None:
                output = result
        return output

    def _named_call(self, args, kwargs):
        """_call, with a layer's refusal named after the layer: a functional op's ValueError
        (an input too small for the kernel) says which op, not which of a network's layers
        called it. Only a leaf layer renames; a container passes its children's errors on,
        and an error that already names its layer (or a subclass of ValueError) is left as
        it is, so a nested call is named once, by the innermost layer."""
        try:
            return self._call(*args, **kwargs)
        except ValueError as error:
            if type(error) is not ValueError or self._modules:
                raise
            name = self._name()
            if str(error).startswith(name):
                raise
            raise LayerError(f"{name}: {error}") from error

    def _call(self, *args, **kwargs):
        # A PyTorch/JAX tensor is viewed as NumPy/CuPy through DLPack, without a copy. A module
        # of several inputs (a forward(x, y) of one's own) takes them all so.
        return self.forward(*(shared_view(a) for a in args), **kwargs)

    # -- hooks ----------------------------------------------------------------------------
    def register_forward_pre_hook(self, hook, *, prepend=False):
        """hook(module, args) runs before each call's forward (args: the call's arguments as
        a tuple); what it returns, if not None, replaces them (a non-tuple as the single
        argument). Returns a handle whose remove() takes the hook away, as PyTorch's."""
        return self._add_hook("_forward_pre_hooks", hook, prepend)

    def register_forward_hook(self, hook, *, prepend=False):
        """hook(module, args, output) runs after each call's forward; what it returns, if not
        None, replaces the output, as PyTorch's. There is no tape: backward() still runs this
        module's own backward, so a hook that changes the output also has to be undone in the
        gradient by the caller. Reading outputs (features for transfer learning, pictures of
        activations) needs none of that. Returns a handle whose remove() takes the hook away."""
        return self._add_hook("_forward_hooks", hook, prepend)

    def _add_hook(self, registry, hook, prepend):
        if not callable(hook):
            raise TypeError(f"{type(self).__name__}.register{registry[:-1]}: hook must be "
                            f"callable, got {type(hook).__name__}")
        hooks = self.__dict__.get(registry)
        if hooks is None:  # a module whose __init__ predates hooks (unpickled)
            hooks = OrderedDict()
            object.__setattr__(self, registry, hooks)
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    # -- traversal ----------------------------------------------------------------------
    def named_children(self):
        """Each child once, under its first name (None slots left out), as PyTorch's."""
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        return (child for _, child in self.named_children())

    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Every module under its dotted name, depth first; a module reachable by two names
        (shared) once, under the first, unless remove_duplicate=False; the modules in `memo`
        (a set, filled as it goes) left out with what is under them, as PyTorch's."""
        if memo is None:
            memo = set()
        if self in memo:
            return
        if remove_duplicate:
            memo.add(self)
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(memo, f"{prefix}.{name}" if prefix else name,
                                               remove_duplicate)

    def _all_modules(self, prefix):
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child._all_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self, remove_duplicate=True):
        return (m for _, m in self.named_modules(remove_duplicate=remove_duplicate))

    def _own_parameters(self):
        return [p for p in self._parameters.values() if p is not None]

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Every parameter under its dotted name; a shared one once (as PyTorch), so that an
        optimizer built from parameters() steps it once."""
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        seen = set()
        for mod_prefix, module in modules:
            for name, p in module._parameters.items():
                if p is None:
                    continue
                if remove_duplicate:
                    if id(p) in seen:
                        continue
                    seen.add(id(p))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), p

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """Every buffer that holds an array, under its dotted name (None ones left out, and an
        array under two names once, as PyTorch)."""
        modules = (self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
                   if recurse else [(prefix, self)])
        seen = set()
        for mod_prefix, module in modules:
            for name in module._buffers:
                value = getattr(module, name)
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def buffers(self, recurse=True):
        return (b for _, b in self.named_buffers(recurse=recurse))

    # -- registration and look-up (PyTorch's names) ---------------------------------------
    def _register(self, what, name, value, registry, kind):
        """setattr(name, value) for register_parameter/add_module, with PyTorch's checks (the
        value's type first, then the name's)."""
        owner = type(self).__name__
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{owner}.{what}: {name!r} must be a {kind.__name__} or None, got "
                            f"{type(value).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"{owner}.{what}: name must be a str, got {type(name).__name__}")
        if not name or "." in name:
            raise KeyError(f"{owner}.{what}: name must be non-empty and without '.', got "
                           f"{name!r}")
        if name not in registry and hasattr(self, name):
            raise KeyError(f"{owner}.{what}: attribute {name!r} already exists")
        registry[name] = value  # a None child keeps its slot, as a None parameter does
        setattr(self, name, value)

    def register_parameter(self, name, param):
        """Add a Parameter (or None: an empty slot) under `name`, as PyTorch's."""
        self._register("register_parameter", name, param, self._parameters, Parameter)

    def add_module(self, name, module):
        """Add a child module under `name` (None: an empty slot), as PyTorch's."""
        self._register("add_module", name, module, self._modules, Module)

    register_module = add_module

    def get_submodule(self, target):
        """The module at dotted path `target` ("" is this one); AttributeError naming the
        first part that is not a child."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:  # no child, or an empty slot
                raise AttributeError(f"{type(module).__name__} has no child module {part!r} "
                                     f"(looking up {target!r})")
            module = child
        return module

    def get_parameter(self, target):
        module, _, name = target.rpartition(".")
        owner = self.get_submodule(module)
        if owner._parameters.get(name) is None:
            raise AttributeError(f"{type(owner).__name__} has no parameter {name!r} (looking "
                                 f"up {target!r})")
        return owner._parameters[name]

    def get_buffer(self, target):
        module, _, name = target.rpartition(".")
        owner = self.get_submodule(module)
        if name not in owner._buffers:
            raise AttributeError(f"{type(owner).__name__} has no buffer {name!r} (looking up "
                                 f"{target!r})")
        return getattr(owner, name)

    def apply(self, fn):
        """fn(module) on every child (recursively), then on this one; returns self. The usual
        way to initialise weights: model.apply(init_fn)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # -- modes and gradients ------------------------------------------------------------
    def train(self, mode=True):
        if not isinstance(mode, (bool, np.bool_)):
            raise ValueError(f"{type(self).__name__}.train: mode must be a bool, got {mode!r}")
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def freeze(self):
        """Stop training these parameters (requires_grad=False): backward skips their gradient
        work and optimizers skip them. Batch-norm statistics still follow train()/eval()."""
        return self.requires_grad_(False)

    def unfreeze(self):
        return self.requires_grad_(True)

    def requires_grad_(self, requires_grad=True):
        """Set requires_grad on every parameter (False: freeze()); returns self."""
        if not isinstance(requires_grad, (bool, np.bool_)):
            raise TypeError(f"{type(self).__name__}.requires_grad_: requires_grad must be a "
                            f"bool, got {requires_grad!r}")
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    # -- state ----------------------------------------------------------------------------
    def state_dict(self, *, destination=None, prefix="", keep_vars=False):
        """Every parameter and buffer under PyTorch's key names (each after `prefix`, as
        torch's: "model." gives "model.0.weight"), put into `destination` when given (and
        returned). Copies on their device; keep_vars=True gives the Parameters and buffer
        arrays themselves."""
        owner = f"{type(self).__name__}.state_dict"
        if not isinstance(prefix, str):
            raise TypeError(f"{owner}: prefix must be a str, got {type(prefix).__name__}")
        if destination is not None and not isinstance(destination, MutableMapping):
            raise TypeError(f"{owner}: destination must be a mutable mapping or None, got "
                            f"{type(destination).__name__}")
        out = OrderedDict() if destination is None else destination
        for path, module in self._all_modules(""):  # a shared module under each name, as torch
            head = prefix + (f"{path}." if path else "")
            for name, p in module._parameters.items():
                if p is not None:
                    out[head + name] = p if keep_vars else p.data.copy()
            for name in module._persistent_buffers():
                value = getattr(module, name)
                if value is not None:
                    out[head + name] = value if keep_vars else module_of(value).array(value)
        return out

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy arrays (NumPy, CuPy, or anything np.asarray takes: converted PyTorch tensors)
        into this module's parameters and buffers, cast to their dtype and kept on their
        device. Returns the named pair (missing_keys, unexpected_keys), as PyTorch's.

        strict=True requires exactly this module's keys (StateDictKeyError, a KeyError and a
        ValueError, naming them), except a batch norm's num_batches_tracked, which may be left
        out (kept as it is), as PyTorch; strict=False skips missing and unexpected keys.
        Every loaded value must have its target's shape (ValueError) and a fitting dtype
        (TypeError): float32 or float64 for a floating parameter or buffer, an integer dtype
        that converts without loss for an integer buffer (num_batches_tracked). Everything is
        checked before anything is copied: after an error the module is unchanged.

        assign=True copies nothing: each given array (a DLPack tensor viewed, not copied)
        becomes the parameter's data or the buffer, with its own dtype and device, as
        PyTorch's; a parameter stays the same Parameter object (an optimizer built before
        still steps it, where torch's would be a new one) and loses its gradient.
        """
        name = type(self).__name__
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{name}.load_state_dict: state_dict must be a mapping of names to "
                            f"arrays, got {type(state_dict).__module__}."
                            f"{type(state_dict).__qualname__}")
        if not isinstance(assign, (bool, np.bool_)):
            raise TypeError(f"{name}.load_state_dict: assign must be a bool, got {assign!r}")
        targets = OrderedDict()
        for prefix, module in self._all_modules(""):
            for attr in list(module._parameters) + module._persistent_buffers():
                if getattr(module, attr) is not None:
                    targets[f"{prefix}.{attr}" if prefix else attr] = (module, attr)
        # As PyTorch's batch norm: a checkpoint without the batch counter (older PyTorch's)
        # loads, the counter kept.
        missing = [k for k in targets if k not in state_dict
                   and targets[k][1] != "num_batches_tracked"]
        unexpected = [k for k in state_dict if k not in targets]
        if strict and (missing or unexpected):
            raise StateDictKeyError(f"{name}.load_state_dict: missing keys {missing}, "
                                    f"unexpected keys {unexpected} (pass strict=False to load "
                                    "the keys in common)")
        loads = []
        for key, (module, attr) in targets.items():
            if key in state_dict:
                current = getattr(module, attr)
                current = current.data if isinstance(current, Parameter) else current
                loads.append((module, attr, current,
                              _loadable(state_dict[key], current, key, name, assign)))
        for module, attr, current, value in loads:
            param = module._parameters.get(attr)
            if assign and param is not None:
                param.data, param.grad = value, None
            elif assign or not is_array(current):
                module.register_buffer(attr, value)
            else:
                current[...] = value
        return _IncompatibleKeys(missing, unexpected)

    def to(self, *args, **kwargs):
        """PyTorch's forms: to(device), to(dtype), to(device, dtype), to(array) (that array's
        device and dtype: NumPy, CuPy, or a tensor that speaks DLPack), and the keywords
        device= and dtype=. A device is "cpu" (NumPy) or "cuda" (CuPy, on CuPy's current
        device; "cuda:N" is not taken: select the GPU with cupy.cuda.Device(N)); gradients
        move with their parameters, and integer buffers (batch counters) stay on the host,
        where Python reads them. A dtype, float32 or float64, is what every floating parameter
        and buffer is cast to (gradients are dropped). Both are checked before anything
        changes. Returns self."""
        device, dtype = self._to_args(args, kwargs)
        if device is not None:
            self._move(device)
        if dtype is not None:
            self._cast(dtype)
        return self

    def _to_args(self, args, kwargs):
        """to()'s arguments as (device or None, dtype or None), each checked."""
        owner = f"{type(self).__name__}.to"
        unknown = sorted(set(kwargs) - {"device", "dtype", "non_blocking"})
        if unknown:
            raise TypeError(f"{owner}: unexpected keyword argument {unknown[0]!r} (device, "
                            "dtype and non_blocking are taken)")
        # torch's copy hint: fastconv's copies to and from the GPU are ordered on the stream
        # anyway, so it is only checked
        if "non_blocking" in kwargs and not isinstance(kwargs["non_blocking"], (bool, np.bool_)):
            raise TypeError(f"{owner}: non_blocking must be a bool, got "
                            f"{kwargs['non_blocking']!r}")
        kwargs = {k: v for k, v in kwargs.items() if k != "non_blocking"}
        if len(args) > 2:
            raise TypeError(f"{owner}: takes at most 2 positional arguments (device, dtype), "
                            f"got {len(args)}")
        given = dict(kwargs)
        if args:
            args = [torch_spelled(a) for a in args]  # a torch.device read as its string below
            first = shared_view(args[0])
            if is_array(first):  # to(array): where it lives and its dtype
                if len(args) > 1 or given:
                    raise TypeError(f"{owner}: an array comes alone, without device or dtype")
                given = {"device": device_of(first), "dtype": first.dtype}
            else:
                is_device = first is None or (isinstance(first, str) and first.split(":")[0]
                                              in ("cpu", "cuda"))
                if isinstance(first, str) and not is_device and not _names_dtype(first):
                    raise ValueError(f"{owner}: expected a device ('cpu' or 'cuda') or a dtype "
                                     f"(float32 or float64), got {first!r}")
                keys = ["device", "dtype"] if is_device or len(args) == 2 else ["dtype"]
                for key, value in zip(keys, args):
                    if key in given:
                        raise TypeError(f"{owner}: got {key} both as an argument and as a "
                                        "keyword")
                    given[key] = value
        device, dtype = given.get("device"), given.get("dtype")
        if device is not None:
            device = parse_device(device, owner)
        if dtype is not None:
            dtype = _float_dtype(dtype, owner)
        return device, dtype

    def _cast(self, dtype):
        for module in self.modules():
            for p in module._own_parameters():
                p.data = p.data.astype(dtype)
                p.grad = None
            for name in module._buffers:
                value = getattr(module, name)
                if _is_float_array(value):
                    object.__setattr__(module, name, value.astype(dtype))

    def _move(self, device):
        if device == "cuda":
            from .._runtime import require_cuda
            require_cuda(f"{type(self).__name__}.to('cuda')")
        for module in self.modules():
            for p in module._own_parameters():
                p.data = to_device(p.data, device)
                if p.grad is not None:
                    p.grad = to_device(p.grad, device)
            for name in module._buffers:
                value = getattr(module, name)
                if _is_float_array(value):
                    object.__setattr__(module, name, to_device(value, device))
        return self

    def cuda(self):
        return self.to("cuda")

    def cpu(self):
        return self.to("cpu")

    @property
    def device(self):
        """Where the parameters live: 'cpu', 'cuda', or 'cpu' for a module without any."""
        for p in self.parameters():
            return p.device
        return "cpu"

    def double(self):
        return self.to(np.float64)

    def float(self):
        return self.to(np.float32)

    # -- display ------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            own = self.num_parameters()
            return head + ")" + (f"  # {own:,} parameters" if own else "")
        lines = [head]
        for name, child in self._modules.items():
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + f"\n)  # {self.num_parameters():,} parameters"

    def _expect(self, x, ndim, what):
        """Reject inputs that are not arrays of `ndim` dimensions, naming this layer."""
        if not is_array(x):
            raise TypeError(f"{self._name()} expected a numpy.ndarray or cupy.ndarray input, "
                            f"got {type(x).__module__}.{type(x).__qualname__}")
        if x.ndim != ndim:
            raise ValueError(f"{self._name()} expected {ndim}-D input {what}, got {x.shape}")

    def _name(self):
        return f"{type(self).__name__}({self.extra_repr()})"


@contextlib.contextmanager
def watch_forward(model, modules, record):
    """Within the block, `model` is in eval mode (no batch-norm statistic moves) and each of
    `modules` calls record(module, output) after its forward; forwards and training flags are
    put back on exit, also when the block raises. Used to read intermediate outputs (summary
    tables, feature maps) without permanent hooks."""
    modes = [(m, m.training) for m in model.modules()]
    wrapped = []

    def wrap(module):
        forward = module.forward  # the bound class method; the instance attribute hides it

        def watched(x):
            y = forward(x)
            record(module, y)
            return y
        return watched

    try:
        for module in dict.fromkeys(modules):  # a shared module is wrapped once
            if "forward" in module.__dict__:
                raise ValueError(f"{type(module).__name__} already has a forward attribute of its "
                                 "own; only a class-method forward can be watched")
            object.__setattr__(module, "forward", wrap(module))
            wrapped.append(module)
        model.eval()
        yield
    finally:
        for module in wrapped:
            del module.__dict__["forward"]
        for module, mode in modes:
            object.__setattr__(module, "training", mode)


def _is_float_array(value):
    return is_array(value) and value.dtype.kind == "f"


def counted(n, noun):
    """'1 channel', '3 channels': a count in a message."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def parse_device(device, owner):
    """'cpu' or 'cuda' from a device argument (None: 'cpu'); ValueError or TypeError naming
    `owner` for anything else."""
    if device is None:
        return "cpu"
    device = torch_spelled(device)
    if device == "cpu:0":  # torch.device("cpu", 0): there is one host
        device = "cpu"
    if not isinstance(device, str):
        raise TypeError(f"{owner}: device must be 'cpu', 'cuda' or None, got {device!r}")
    if device.startswith("cuda:"):
        raise ValueError(f"{owner}: device must be 'cpu' or 'cuda', got {device!r}; select the "
                         "GPU with cupy.cuda.Device(N)")
    if device not in ("cpu", "cuda"):
        raise ValueError(f"{owner}: device must be 'cpu' or 'cuda', got {device!r}")
    return device


def _names_dtype(text):
    """Whether NumPy reads the string `text` as a dtype ("float64", "f4")."""
    try:
        np.dtype(text)
    except TypeError:
        return False
    return True


def _float_dtype(dtype, owner):
    """dtype as np.float32 or np.float64 (or torch's), else TypeError naming `owner`."""
    try:
        parsed = np.dtype(torch_spelled(dtype))
    except (TypeError, ValueError):
        parsed = None
    if parsed not in (np.float32, np.float64):
        raise TypeError(f"{owner}: dtype must be float32 or float64, got "
                        f"{repr(dtype) if parsed is None else parsed}")
    return parsed


def layer_dtype(dtype, owner):
    """A layer constructor's dtype argument: None is float32, as torch's None is its default
    dtype (float32 unless changed); float32 and float64 are taken."""
    return np.dtype(np.float32) if dtype is None else _float_dtype(dtype, owner)


def layer_device(device, owner):
    """A layer constructor's device argument, checked before the layer is built: 'cuda' is
    refused here, as .to('cuda') refuses it, where it cannot run; 'cpu' for None."""
    device = parse_device(device, owner)
    if device == "cuda":
        from .._runtime import require_cuda
        require_cuda(f"{owner}(device='cuda')")
    return device


def trains(module):
    """Whether module holds a parameter that requires a gradient."""
    return any(p.requires_grad for p in module.parameters())


def backward_params_chain(modules, dout, links=None):
    """backward_params through modules run in that order (a chain): backward through the
    layers after the first one that trains, backward_params on that one, none before it.
    links[i] maps the gradient of module i + 1's input to that of module i's output (a
    reshape between them); absent: the same array."""
    modules = list(modules)
    first = next((i for i, m in enumerate(modules) if trains(m)), None)
    if first is None:
        return
    for i in range(len(modules) - 1, first, -1):
        dout = modules[i].backward(dout)
        if links and i - 1 in links:
            dout = links[i - 1](dout)
    modules[first].backward_params(dout)


class RemovableHandle:
    """What register_forward_hook returns: remove() (or leaving a with-block) takes the hook
    away; removing twice is harmless, as PyTorch's handle."""

    _ids = itertools.count()

    def __init__(self, hooks):
        self._hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self):
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class LayerError(ValueError):
    """A ValueError raised in a layer's forward, renamed after the layer (its message starts
    with the layer's name; the op's own error is its __cause__)."""


class _IncompatibleKeys(namedtuple("_IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What load_state_dict returns, as PyTorch's: a (missing_keys, unexpected_keys) pair."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


class StateDictKeyError(KeyError, ValueError):
    """Missing or unexpected keys in load_state_dict(strict=True): a KeyError, as it has always
    been, and a ValueError (a bad argument)."""

    def __str__(self):
        return str(self.args[0])


def _loadable(value, current, key, name, assign=False):
    """value as the array to copy into `current` (converted to its dtype, on its device), or
    with assign, as the array to put in its place (value itself, or a view of a DLPack
    tensor); TypeError/ValueError naming `key` when it does not fit."""
    op = f"{name}.load_state_dict"
    if isinstance(value, Parameter):  # state_dict(keep_vars=True) gives the Parameters
        value = value.data
    try:
        array = shared_view(value) if assign else to_numpy(value)
        array = array if is_array(array) else np.asarray(array)
    except Exception as e:
        raise TypeError(f"{op}: {key} must be an array, got "
                        f"{type(value).__module__}.{type(value).__qualname__} ({e})") from e
    target = np.asarray(current).dtype if not is_array(current) else current.dtype
    if target.kind == "f":
        fits = array.dtype.kind == "f" and array.dtype.itemsize in (4, 8)
        wanted = "float32 or float64"
    else:
        fits = array.dtype.kind != "b" and np.can_cast(array.dtype, target, casting="safe")
        wanted = f"{target} or an integer dtype that converts to it without loss"
    if not fits:
        raise TypeError(f"{op}: {key} has dtype {array.dtype}, expected {wanted} (the "
                        f"{target} of this module's {key}); convert it explicitly first")
    if array.shape != np.shape(current):
        raise ValueError(f"{op}: {key} has shape {array.shape}, expected {np.shape(current)}")
    if assign:
        if not writable(array):
            raise ValueError(f"{op}: {key} is read-only; with assign=True it becomes this "
                             "module's own array, which training and batch norm write in place")
        return c_contiguous(array)
    array = array.astype(target, copy=False)
    return module_of(current).asarray(array) if is_array(current) else array
