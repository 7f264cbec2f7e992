"""Model conversion: swap torch.nn GRUs for ours, and build GRUs from / into Keras 3 layers."""

import torch
from torch import nn

from .module import GRU, GRUCell

_HOOK_DICTS = ("_forward_hooks", "_forward_hooks_with_kwargs", "_forward_hooks_always_called",
               "_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_backward_hooks",
               "_backward_pre_hooks", "_state_dict_hooks", "_state_dict_pre_hooks",
               "_load_state_dict_pre_hooks", "_load_state_dict_post_hooks")


def _converted(old: nn.Module) -> nn.Module:
    first = next(old.parameters())
    if isinstance(old, nn.GRU):
        new = GRU(old.input_size, old.hidden_size, old.num_layers, bias=old.bias,
                  batch_first=old.batch_first, dropout=old.dropout,
                  bidirectional=old.bidirectional, device="meta", dtype=first.dtype)
    else:
        new = GRUCell(old.input_size, old.hidden_size, bias=old.bias, device="meta",
                      dtype=first.dtype)
    # The very same Parameter objects: an optimizer built before the swap keeps working, and
    # device, dtype and requires_grad stay what they were.
    for name, param in old.named_parameters(recurse=False):
        setattr(new, name, param)
    for name in _HOOK_DICTS:
        if hasattr(old, name):
            setattr(new, name, getattr(old, name))
    new.train(old.training)
    return new


def replace_gru(model: nn.Module) -> nn.Module:
    """Swaps every ``torch.nn.GRU`` and ``torch.nn.GRUCell`` inside ``model`` (the model itself
    included, if it is one) for ``gru_triton.GRU`` / ``GRUCell``, in place, and returns it.

    The new modules hold the old Parameter objects (so weights, device, dtype, requires_grad
    and optimizers referring to them carry over), their hooks and their train/eval mode.
    Modules that already are gru_triton's are left alone.
    """
    def wanted(module):
        return type(module) in (nn.GRU, nn.GRUCell)

    if wanted(model):
        return _converted(model)
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if wanted(child):
                setattr(parent, name, _converted(child))
    return model


# ---------------------------------------------------------------------------------------
# Keras 3
# ---------------------------------------------------------------------------------------

def _keras():
    try:
        import keras
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("Keras interop needs Keras 3: pip install keras") from error
    if not keras.__version__.startswith("3"):
        raise ImportError(f"Keras interop needs Keras 3, found {keras.__version__}")
    return keras


def _swap_r_z(w: torch.Tensor, H: int) -> torch.Tensor:
    """Keras orders the gates (z, r, h) along its last axis, PyTorch (r, z, n): swapping the
    first two blocks maps either order to the other."""
    return torch.cat([w[..., H:2 * H], w[..., :H], w[..., 2 * H:]], dim=-1)


def from_keras(layer, *, device=None) -> GRU:
    """A ``gru_triton.GRU`` (batch_first=True, like Keras) with the weights of a built Keras 3
    ``keras.layers.GRU``.

    Keras' kernel (I, 3H), recurrent_kernel (H, 3H) and bias ((2, 3H) with ``reset_after``,
    (3H,) without) become weight_ih_l0 (3H, I), weight_hh_l0 (3H, H), bias_ih_l0 and
    bias_hh_l0 (3H,), with the gates reordered from Keras' (z, r, h) to (r, z, n). The result
    returns (output, h_n) always: Keras' ``return_sequences=True`` output is ``output``, and
    its ``return_state`` state (or the last output) is ``h_n[0]``. Keras options with no
    equivalent raise ValueError naming the option.
    """
    keras = _keras()
    if not isinstance(layer, keras.layers.GRU):
        raise TypeError(f"from_keras expects a keras.layers.GRU, got {type(layer).__name__}")
    config = layer.get_config()
    unsupported = {
        "activation": (config["activation"] != "tanh", "only 'tanh' is supported"),
        "recurrent_activation": (config["recurrent_activation"] != "sigmoid",
                                 "only 'sigmoid' is supported"),
        "go_backwards": (config["go_backwards"],
                         "flip the time axis of the input (and of the output) instead"),
        "stateful": (config["stateful"], "pass h_n back in as hx on the next call instead"),
        "dropout": (config["dropout"] > 0, "apply torch.nn.Dropout to the input instead"),
        "recurrent_dropout": (config["recurrent_dropout"] > 0,
                              "dropout on the recurrent state is not supported"),
    }
    for option, (bad, advice) in unsupported.items():
        if bad:
            raise ValueError(f"from_keras: Keras GRU option {option}={config[option]!r} is not "
                             f"supported: {advice}")
    if not layer.built:
        raise ValueError("from_keras: the Keras layer has no weights yet; build it (call it on "
                         "an input or call layer.build(input_shape)) first")
    as_torch = lambda v: torch.as_tensor(keras.ops.convert_to_numpy(v))
    cell = layer.cell
    kernel, recurrent = as_torch(cell.kernel), as_torch(cell.recurrent_kernel)
    input_size, H = kernel.shape[0], config["units"]
    module = GRU(input_size, H, bias=config["use_bias"], batch_first=True,
                 reset_after=config["reset_after"], dtype=kernel.dtype, device=device)
    with torch.no_grad():
        module.weight_ih_l0.copy_(_swap_r_z(kernel, H).t())
        module.weight_hh_l0.copy_(_swap_r_z(recurrent, H).t())
        if config["use_bias"]:
            bias = as_torch(cell.bias)
            if config["reset_after"]:
                module.bias_ih_l0.copy_(_swap_r_z(bias[0], H))
                module.bias_hh_l0.copy_(_swap_r_z(bias[1], H))
            else:
                # Reset-before: every bias term sits outside r, so one bias is the sum.
                module.bias_ih_l0.copy_(_swap_r_z(bias, H))
                module.bias_hh_l0.zero_()
    return module


def to_keras(module: GRU, **layer_kwargs):
    """A built Keras 3 ``keras.layers.GRU`` computing what the single-layer, unidirectional
    ``module`` (a gru_triton.GRU or torch.nn.GRU) computes, for batch-first input (B, T, I).

    ``layer_kwargs`` go to ``keras.layers.GRU`` (e.g. ``return_sequences=True``,
    ``return_state=True``); units, reset_after and use_bias come from the module.
    """
    keras = _keras()
    if not isinstance(module, (nn.GRU, GRU)):
        raise TypeError(f"to_keras expects a GRU module, got {type(module).__name__}")
    if module.num_layers != 1 or module.bidirectional:
        raise ValueError("to_keras: a Keras GRU layer is one layer, one direction; convert "
                         "each layer of a stacked or bidirectional GRU separately (Keras: "
                         "keras.layers.Bidirectional)")
    reset_after = getattr(module, "reset_after", True)
    for option in ("units", "reset_after", "use_bias"):
        if option in layer_kwargs:
            raise ValueError(f"to_keras: {option} comes from the module; do not pass it")
    H, input_size = module.hidden_size, module.input_size
    layer = keras.layers.GRU(H, reset_after=reset_after, use_bias=module.bias, **layer_kwargs)
    layer.build((None, None, input_size))
    to_numpy = lambda t: t.detach().to("cpu", torch.float32).numpy()
    weights = [to_numpy(_swap_r_z(module.weight_ih_l0.t(), H)),
               to_numpy(_swap_r_z(module.weight_hh_l0.t(), H))]
    if module.bias:
        b_ih = _swap_r_z(module.bias_ih_l0, H)
        b_hh = _swap_r_z(module.bias_hh_l0, H)
        weights.append(to_numpy(torch.stack([b_ih, b_hh]) if reset_after else b_ih + b_hh))
    layer.set_weights(weights)
    return layer
