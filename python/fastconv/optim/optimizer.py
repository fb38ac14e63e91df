"""The Optimizer base: parameter groups, per-parameter state, zero_grad, state_dict."""

import copy
import numbers
from collections import defaultdict

from .._arrays import c_contiguous, device_of, is_array, to_device, writable, zeros
from ..nn.parameter import Parameter


class Optimizer:
    """Holds parameter groups (dicts with "params" and hyperparameters) and per-parameter
    state, as torch.optim.Optimizer does. Parameters may come named, as (name, Parameter)
    pairs (model.named_parameters()): the group then keeps the names in "param_names", as
    torch's, and state_dict() saves them. Subclasses implement ``_update(p, grad, group,
    state)``, which calls one fused kernel for one parameter."""

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        if isinstance(params, Parameter):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of Parameters "
                            "or of dicts, got a single Parameter")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group):
        name = type(self).__name__
        if not isinstance(group, dict):
            raise TypeError(f"{name}: a parameter group must be a dict, got {type(group).__name__}")
        group = dict(group)
        params = group.get("params")
        params = [params] if isinstance(params, Parameter) else list(params or ())
        named = [p for p in params if isinstance(p, tuple)]
        if named:
            if len(named) != len(params):
                raise ValueError(f"{name}: all parameters of a group must come with names or "
                                 "all without; some names are missing")
            odd = next((pair for pair in named if len(pair) != 2), None)
            if odd is not None:
                raise TypeError(f"{name}: a named parameter must be a (name, Parameter) pair, "
                                f"got a tuple of {len(odd)}")
            group["param_names"] = [n for n, _ in named]
            params = [p for _, p in named]
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(f"{name} can only optimize fastconv.nn.Parameter objects, got "
                                f"{type(p).__name__}")
        # as torch: the names are all or nothing, across groups too
        has_names = "param_names" in group
        if self.param_groups and ("param_names" in self.param_groups[0]) != has_names:
            raise ValueError(f"{name}: all parameter groups must come with names or all "
                             f"without; cannot add a group {'with' if has_names else 'without'} "
                             "names to this optimizer")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError(f"{name}: a parameter appears in more than one group")
        group["params"] = params
        for key, value in self.defaults.items():
            group.setdefault(key, value)
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Reject invalid hyperparameters with torch's messages (subclasses extend)."""
        self._at_least_zero(group, "lr", "learning rate")
        if "weight_decay" in group:
            self._at_least_zero(group, "weight_decay")
        if "eps" in group:
            self._at_least_zero(group, "eps", "epsilon value")

    @staticmethod
    def _at_least_zero(group, key, what=None):
        """group[key] >= 0, NaN refused (torch's `not 0.0 <= value`)."""
        value = group[key]
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{key} must be a real number, got {value!r}")
        if not 0.0 <= value:
            raise ValueError(f"Invalid {what or key + ' value'}: {value}")

    def zero_grad(self, set_to_none=True):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self, closure=None):
        """One update of every parameter that has a gradient and is not frozen. Every
        parameter is checked before any is updated, so a refusal leaves the model as it was; a
        gradient that is not C-contiguous (a transposed view) is read through a copy."""
        loss = closure() if closure is not None else None
        name = type(self).__name__
        todo = []
        for gi, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                if p.grad is None or not p.requires_grad:
                    continue
                where = f"param_groups[{gi}]['params'][{i}]"
                if not is_array(p.grad):
                    raise TypeError(f"{name}: the gradient of {where} must be an array, got "
                                    f"{type(p.grad).__name__}")
                if p.grad.shape != p.data.shape or p.grad.dtype != p.data.dtype:
                    raise ValueError(f"{name}: the gradient of {where}, {p.grad.shape} "
                                     f"{p.grad.dtype}, does not match the parameter, "
                                     f"{p.data.shape} {p.data.dtype}")
                if device_of(p.grad) != device_of(p.data):
                    raise ValueError(f"{name}: the gradient of {where} is on "
                                     f"{device_of(p.grad)}, the parameter on "
                                     f"{device_of(p.data)}")
                if not p.data.flags.c_contiguous:
                    raise ValueError(f"{name}: {where}.data must be C-contiguous (it is updated "
                                     f"in place), got strides {p.data.strides}")
                self._check_state(self.state.get(p, {}), p, where)
                todo.append((p, c_contiguous(p.grad), group))
        for p, grad, group in todo:
            state = self.state.get(p, {})
            self._update(p, grad, group, state)
            if state:  # as torch, no entry for a parameter without state (SGD without momentum)
                self.state[p] = state
        return loss

    def _update(self, p, grad, group, state):
        raise NotImplementedError

    def _check_state(self, state, p, where):
        """p's state as its kernel reads it (set by hand or loaded): every array the
        parameter's shape, dtype and device, C-contiguous, writable, and not the parameter or
        its gradient; a step count a whole number >= 0."""
        name = type(self).__name__
        for key, value in state.items():
            if key == "step":
                if isinstance(value, bool) or not isinstance(value, numbers.Real) or \
                        not (value >= 0 and float(value).is_integer()):
                    raise ValueError(f"{name}: state['step'] of {where} must be a whole number "
                                     f">= 0, got {value!r}")
                continue
            if value is None:
                continue
            if not is_array(value):
                raise TypeError(f"{name}: state[{key!r}] of {where} must be an array, got "
                                f"{type(value).__name__}")
            if (value.shape != p.data.shape or value.dtype != p.data.dtype
                    or device_of(value) != device_of(p.data)):
                raise ValueError(f"{name}: state[{key!r}] of {where} must be "
                                 f"{p.data.shape} {p.data.dtype} on {device_of(p.data)}, got "
                                 f"{value.shape} {value.dtype} on {device_of(value)}")
            if not (value.flags.c_contiguous and writable(value)):
                raise ValueError(f"{name}: state[{key!r}] of {where} must be a C-contiguous, "
                                 "writable array (it is updated in place)")
            if value is p.data or value is p.grad:
                raise ValueError(f"{name}: state[{key!r}] of {where} is the parameter or its "
                                 "gradient itself")

    @staticmethod
    def _zeros(p):
        """State for p: zeros on p's device with its dtype."""
        return zeros(p.data, p.data.shape)

    def state_dict(self):
        """torch's layout: {"state": {index: {...}}, "param_groups": [{..., "params": [index]}]},
        parameters numbered in group order; arrays are copies, on the parameters' device."""
        index, groups, state = {}, [], {}
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index.setdefault(id(p), len(index))
                packed["params"].append(index[id(p)])
                if p in self.state:
                    state[index[id(p)]] = copy.deepcopy(self.state[p])
            groups.append(packed)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """torch's layout (what state_dict() returns, ours or torch's). The hyperparameters are
        checked as the constructor checks them, the state as step() does, before anything is
        replaced."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not isinstance(state_dict.get("state"), dict) \
                or not isinstance(state_dict.get("param_groups"), list):
            raise TypeError(f"{name}.load_state_dict: expected a dict with 'state' (a dict) and "
                            f"'param_groups' (a list), as state_dict() returns")
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: {len(groups)} parameter groups given, "
                             f"this optimizer has {len(self.param_groups)}")
        for saved, group in zip(groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"{name}.load_state_dict: a group of {len(saved['params'])} "
                                 f"parameters given for one of {len(group['params'])}")
        new_groups, new_state = [], defaultdict(dict)
        for gi, (saved, group) in enumerate(zip(groups, self.param_groups)):
            merged = dict(group, **{k: v for k, v in saved.items() if k != "params"})
            checked = dict(merged)
            if isinstance(checked.get("lr"), numbers.Real) and checked["lr"] < 0:
                # torch checks only the constructor's lr, and a schedule may end a rounding
                # below zero (LinearLR to 0): its own state must load back
                checked["lr"] = 0.0
            self._check_group(checked)
            new_groups.append(merged)
            for j, (i, p) in enumerate(zip(saved["params"], group["params"])):
                if i in state_dict["state"]:
                    entry = state_dict["state"][i]
                    if not isinstance(entry, dict):
                        raise TypeError(f"{name}.load_state_dict: state[{i}] must be a dict, got "
                                        f"{type(entry).__name__}")
                    # arrays become copies in the parameter's dtype, on its device
                    new_state[p] = {k: self._loaded(v, p) for k, v in entry.items()}
                    self._check_state(new_state[p], p, f"param_groups[{gi}]['params'][{j}]")
        for group, merged in zip(self.param_groups, new_groups):
            group.update(merged)
        self.state = new_state

    @staticmethod
    def _loaded(value, p):
        """A saved state entry for p: arrays (and torch's tensors) as copies in p's dtype on p's
        device; a 0-d tensor (torch's step count, a float) as a Python number, an int when whole."""
        if type(value).__module__.startswith("torch"):
            value = value.detach().cpu().numpy()
            if value.ndim == 0:
                item = value.item()
                return int(item) if isinstance(item, float) and item.is_integer() else item
        if is_array(value):
            return to_device(value, device_of(p.data)).astype(p.data.dtype)
        return copy.deepcopy(value)
